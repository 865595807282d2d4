"""The two roles: Managers (run campaigns in the admin) and Agents (the console only, no admin access).

Managers may change everything a campaign needs (campaigns, contacts, do-not-call list, disposition codes,
agent accounts) and only view what the dialer records (calls, call events, webhooks, dispositions, agent
sessions), plus replay stored webhooks. Membership alone does not open the admin: a manager's account also
needs "staff status", which the admin's user form offers.

`sync_groups` is idempotent so tests (and a flushed database) can run it again.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ALL = ("add", "change", "delete", "view")
MANAGER_PERMISSIONS = {
    "campaigns": {
        "campaign": ALL,
        "contact": ALL,
        "donotcall": ALL,
        "dispositioncode": ALL,
        "agentsession": ("view", "change"),  # change: the "sign out" action, no field is editable
    },
    "voice": {
        # Under campaigns when this migration first ran; voice.0011 moved the model (its content type, so the
        # grant, came along) and grants it on a database this migration found without it.
        "disposition": ("view",),
        "call": ("view",),
        "callevent": ("view",),
        "calleffect": ("view",),  # the outbox; granted by voice.0003, which creates the model
        "webhookevent": ("view", "replay"),
    },
    "auth": {
        "user": ("add", "change", "view"),  # agent accounts; the user admin hides superuser powers from them
        "group": ("view",),
    },
}
# Not declared in WebhookEvent.Meta.permissions (yet): created here so the admin's replay action can be granted.
EXTRA_PERMISSIONS = [("voice", "webhookevent", "replay_webhookevent", "Can replay webhook event")]


def sync_groups(apps, schema_editor=None):
    # Permissions are normally created after `migrate` finishes; this migration needs them now. Historical app
    # configs have no models module, which create_permissions takes for "no models": lend them one.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for app_label, model, codename, name in EXTRA_PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        Permission.objects.get_or_create(content_type=content_type, codename=codename, defaults={"name": name})

    managers, _ = Group.objects.get_or_create(name="Managers")
    wanted = []
    for app_label, models in MANAGER_PERMISSIONS.items():
        for model, actions in models.items():
            for action in actions:
                permission = Permission.objects.filter(content_type__app_label=app_label,
                                                       content_type__model=model, codename=f"{action}_{model}").first()
                if permission is not None:  # a model a later migration creates: that migration syncs again
                    wanted.append(permission)
    managers.permissions.set(wanted)
    agents, _ = Group.objects.get_or_create(name="Agents")
    agents.permissions.clear()


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Managers", "Agents"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_initial"),
        ("voice", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(sync_groups, remove_groups)]
