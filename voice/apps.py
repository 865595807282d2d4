from django.apps import AppConfig


class VoiceConfig(AppConfig):
    name = "voice"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from voice import outbox, presence, recordings, supervision

        presence.connect_signals()
        outbox.sender_register(outbox.START_RECORDING, recordings.recording_send_start)
        outbox.sender_register(outbox.TAKE_OUT_SUPERVISORS, supervision.supervisions_take_out)
