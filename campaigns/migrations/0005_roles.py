"""The three roles as explicit permissions (is_staff only opens the admin, it no longer makes a manager):

- Agents: no permission; the console of the campaigns they are members of.
- Managers: `campaigns.manage_campaigns` plus the model permissions of 0003. They keep `auth.add/change_user`
  for agent accounts, and the user admin limits them to agents (no groups, permissions, staff or superuser
  status; no other manager's or administrator's account or password).
- Administrators: every permission, `campaigns.administer_accounts` included (grant roles, edit anyone).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def _create_permissions(apps):
    # Permissions are normally created after `migrate` finishes; this migration needs the new ones now.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module


def add_roles(apps, schema_editor):
    _create_permissions(apps)
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    manage = Permission.objects.get(content_type__app_label="campaigns", codename="manage_campaigns")
    Group.objects.get_or_create(name="Managers")[0].permissions.add(manage)
    Group.objects.get_or_create(name="Agents")
    Group.objects.get_or_create(name="Administrators")[0].permissions.set(Permission.objects.all())


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name="Administrators").delete()
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name="Managers"):
        group.permissions.remove(*Permission.objects.filter(codename="manage_campaigns"))


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0004_campaign_abandon_cap_opt_out_and_more"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="campaign",
            options={
                "ordering": ["-created_at"],
                "permissions": [
                    ("manage_campaigns", "Can run campaigns, contacts and agents (the manager role)"),
                    ("administer_accounts", "Can edit any account, groups and permissions (the administrator role)"),
                ],
            },
        ),
        migrations.RunPython(add_roles, remove_roles),
    ]
