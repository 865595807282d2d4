"""Disposition moved from campaigns to voice (voice.0011, campaigns.0010): a database migrated before the move keeps
its rows and its grants, and a manager can still read dispositions in the admin."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests import factories
from voice.models import Disposition

# Real migrations run backwards and forwards: they need real transactions, not the test's wrapping one.
pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_THE_MOVE = [("campaigns", "0009_merge_20261129_1949"), ("voice", "0010_merge_20261129_1939")]
ACTIONS = ("add", "change", "delete", "view")


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _migrate_to_latest() -> None:
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _group_permissions(name: str) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in Permission.objects.filter(group__name=name).select_related("content_type")}


@pytest.fixture
def disposed():
    """A manager and an administrator as the migrations leave them, and one call with its disposition."""
    factories.ensure_roles()
    manager = factories.make_user(manager=True)
    admin = factories.make_user(admin=True)
    agent = factories.make_user()
    campaign = factories.make_campaign(agents=[agent])
    session = factories.make_session(campaign=campaign, agent=agent)
    call = factories.make_call(campaign=campaign, contact=factories.make_contact(campaign=campaign),
                               at=timezone.now(), outcome="talked", answered_by="human", bridged_to=session,
                               talk_s=60, code="interested", notes="Wants a demo")
    yield manager, admin, call.disposition
    _migrate_to_latest()  # whatever an assertion left half done, the next test gets the real schema


def test_a_database_from_before_the_move_keeps_its_dispositions_and_grants(client, disposed):
    manager, admin, disposition = disposed
    content_type_id = ContentType.objects.get(app_label="voice", model="disposition").pk

    _migrate(BEFORE_THE_MOVE)
    # The database as it was before the move: the permissions under campaigns, the managers' grant with them.
    assert ContentType.objects.filter(app_label="campaigns", model="disposition").get().pk == content_type_id
    assert not ContentType.objects.filter(app_label="voice", model="disposition").exists()
    assert "campaigns.view_disposition" in _group_permissions("Managers")
    assert {f"campaigns.{a}_disposition" for a in ACTIONS} <= _group_permissions("Administrators")

    _migrate_to_latest()
    ContentType.objects.clear_cache()
    # The same content type row, so the same permission rows and every grant of them, now under voice.
    assert ContentType.objects.get(app_label="voice", model="disposition").pk == content_type_id
    assert not ContentType.objects.filter(app_label="campaigns", model="disposition").exists()
    manager = get_user_model().objects.get(pk=manager.pk)
    assert manager.has_perm("voice.view_disposition")
    assert not manager.has_perm("voice.change_disposition")
    admin = get_user_model().objects.get(pk=admin.pk)
    assert all(admin.has_perm(f"voice.{a}_disposition") for a in ACTIONS)
    assert Disposition.objects.get(pk=disposition.pk).notes == "Wants a demo"

    client.force_login(manager)
    page = client.get("/admin/voice/disposition/")
    assert page.status_code == 200
    assert "Wants a demo" in page.content.decode()
    assert client.get(f"/admin/voice/disposition/{disposition.pk}/change/").status_code == 200


def test_a_new_database_grants_the_managers_what_0003_could_not_find(disposed):
    # A new database runs campaigns.0003 while the model is under campaigns, and 0003's list names it under voice:
    # the managers get no disposition permission there. Simulated by taking the grant away before the move.
    _migrate(BEFORE_THE_MOVE)
    managers = Group.objects.get(name="Managers")
    managers.permissions.remove(*Permission.objects.filter(content_type__model="disposition"))
    assert "campaigns.view_disposition" not in _group_permissions("Managers")

    _migrate_to_latest()
    assert "voice.view_disposition" in _group_permissions("Managers")
    assert not {f"voice.{a}_disposition" for a in ("add", "change", "delete")} & _group_permissions("Managers")
