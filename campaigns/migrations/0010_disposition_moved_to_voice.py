"""Disposition moves to voice (voice.0011 adds it to voice's state and moves its content type): drop it from
campaigns' state only. The table stays as it is, under its old name, and becomes voice's."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0009_merge_20261129_1949"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Disposition")],
            database_operations=[],
        ),
    ]
