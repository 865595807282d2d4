"""Managers may view recordings (and delete them, here and at Twilio: the admin action needs `change`), and view
supervisions. Same mechanism as campaigns.0003_groups, which ran before these models existed."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {"recording": ("view", "change"), "supervision": ("view",)}


def grant(apps, schema_editor=None):
    app_config = apps.get_app_config("voice")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    managers, _ = Group.objects.get_or_create(name="Managers")
    managers.permissions.add(*[
        Permission.objects.get(content_type__app_label="voice", content_type__model=model, codename=f"{action}_{model}")
        for model, actions in GRANTS.items() for action in actions
    ])


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    group = apps.get_model("auth", "Group").objects.filter(name="Managers").first()
    if group is not None:
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="voice",
                                                            content_type__model__in=list(GRANTS)))


class Migration(migrations.Migration):
    dependencies = [
        ("voice", "0004_recording_supervision"),
        ("campaigns", "0003_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
