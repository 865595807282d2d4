"""Disposition moves from campaigns to voice (an agent's outcome on a call; campaigns never imports voice).

Only Django's idea of where the model lives changes: the table keeps its name (`campaigns_disposition`, in the
model's Meta), so nothing is copied or renamed; campaigns.0010 dropped the model from campaigns' state, this one
adds it to voice's. The content type moves with it, so its permissions (the same rows) and every group's or user's
grant of them keep working, and the admin's log entries keep pointing at their dispositions.

Depending on campaigns.0010 (rather than the other way round) leaves the order of the older migrations on a new
database as it was: voice.0008 still runs last of them, so the Administrators group still gets every permission.
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def _move_content_type(apps, *, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    moving = ContentType.objects.filter(app_label=old, model="disposition").first()
    if moving is None:  # a database that never created permissions: they are created under the new label
        return
    # A row already under the new label can only be one created by `migrate`'s end-of-run step after a partial
    # run; nothing was granted through it (the groups' code named the old label). The old row, with its grants,
    # takes its place.
    ContentType.objects.filter(app_label=new, model="disposition").delete()
    moving.app_label = new
    moving.save(update_fields=["app_label"])
    ContentType.objects.clear_cache()


def move_to_voice(apps, schema_editor):
    _move_content_type(apps, old="campaigns", new="voice")


def move_to_campaigns(apps, schema_editor):
    _move_content_type(apps, old="voice", new="campaigns")


def grant(apps, schema_editor=None):
    """Managers view dispositions, as campaigns.0003's MANAGER_PERMISSIONS says. A database migrated before the move
    has the grant already (it came with the content type); a new one does not: 0003 ran while the model was still
    under campaigns and found no voice.disposition. Adds only: other grants on the group are left alone."""
    app_config = apps.get_app_config("voice")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    actions = importlib.import_module("campaigns.migrations.0003_groups").MANAGER_PERMISSIONS["voice"]["disposition"]
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    managers, _ = Group.objects.get_or_create(name="Managers")
    managers.permissions.add(*Permission.objects.filter(
        content_type__app_label="voice", content_type__model="disposition",
        codename__in=[f"{action}_disposition" for action in actions]))


class Migration(migrations.Migration):
    dependencies = [
        ("voice", "0010_merge_20261129_1939"),
        ("campaigns", "0010_disposition_moved_to_voice"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Disposition",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("notes", models.TextField(blank=True)),
                        ("callback_at", models.DateTimeField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("agent", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT,
                                                    related_name="dispositions", to=settings.AUTH_USER_MODEL)),
                        ("call", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                                      related_name="disposition", to="voice.call")),
                        ("code", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+",
                                                   to="campaigns.dispositioncode")),
                        ("contact", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                                      related_name="dispositions", to="campaigns.contact")),
                    ],
                    options={
                        "db_table": "campaigns_disposition",
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(fields=["created_at"], name="disposition_created_idx")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_to_voice, move_to_campaigns),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
