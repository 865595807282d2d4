"""Managers' permissions once every model exists: the groups' full set (campaigns.0003's `sync_groups`, which
sets the list), then the roles (campaigns.0005) and the recording grants (voice.0005), which add. Branches ran
them in either order, and the set could drop what the others added."""

import importlib

from django.db import migrations


def grant_all(apps, schema_editor):
    importlib.import_module("campaigns.migrations.0003_groups").sync_groups(apps, schema_editor)
    importlib.import_module("campaigns.migrations.0005_roles").add_roles(apps, schema_editor)
    importlib.import_module("voice.migrations.0005_recording_permissions").grant(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("voice", "0007_merge_20261129_1928"),
        ("campaigns", "0005_roles"),
    ]

    operations = [migrations.RunPython(grant_all, migrations.RunPython.noop)]
