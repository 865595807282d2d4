"""Managers' permissions once every model exists: the groups' full set (campaigns.0003's `sync_groups`, which
sets the list) and then the recording grants (voice.0005, which adds). Two branches ran them in either order,
and the set could drop the recording grants."""

import importlib

from django.db import migrations


def grant_all(apps, schema_editor):
    importlib.import_module("campaigns.migrations.0003_groups").sync_groups(apps, schema_editor)
    importlib.import_module("voice.migrations.0005_recording_permissions").grant(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("voice", "0007_merge_20261129_1928"),
    ]

    operations = [migrations.RunPython(grant_all, migrations.RunPython.noop)]
