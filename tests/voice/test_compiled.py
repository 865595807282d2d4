"""voice.compiled: a read compiled once gives what the queryset gives, locks what it locks, and refuses misuse."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError

from campaigns.models import Contact
from tests import factories
from voice import compiled
from voice.compiled import CompiledGet
from voice.models import Call, CallEvent, WebhookEvent
from voice.states import State

pytestmark = pytest.mark.django_db(transaction=True)

locked_call = CompiledGet(
    lambda: Call.objects.select_for_update(of=("self",), no_key=True).select_related("campaign", "contact"))


def values(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.fixture
def call():
    campaign = factories.make_campaign(name="Spring renewals", max_hold_s=2.5, voicemail_text="Call us back")
    contact = factories.make_contact(campaign=campaign, name="Ada Lovelace", company="Engines Ltd")
    return Call.objects.create(campaign=campaign, contact=contact, state=State.RINGING, sid="CA" + "1" * 32,
                               answered_by="human", last_sequence=3)


def test_it_reads_what_the_queryset_reads_call_campaign_and_contact_in_one_statement(call, django_assert_num_queries):
    with transaction.atomic():
        expected = Call.objects.select_related("campaign", "contact").get(pk=call.pk)
        with django_assert_num_queries(1):
            got = locked_call.get(call.pk)
            campaign, contact = got.campaign, got.contact  # joined: no query of their own
    assert values(got) == values(expected)
    assert values(campaign) == values(expected.campaign)
    assert values(contact) == values(expected.contact)
    assert (campaign.name, contact.name, campaign.max_hold_s) == ("Spring renewals", "Ada Lovelace", 2.5)
    # Model instances as the ORM makes them: saving one updates the row, it does not insert another.
    assert not got._state.adding and got._state.db == "default"
    got.last_sequence = 4
    got.save(update_fields=["last_sequence"])
    assert Call.objects.get(pk=call.pk).last_sequence == 4
    assert Call.objects.count() == 1


def test_an_unknown_id_raises_does_not_exist(call):
    with transaction.atomic(), pytest.raises(Call.DoesNotExist):
        locked_call.get(call.pk + 1000)


def test_a_locking_read_outside_a_transaction_is_refused_as_django_refuses_it(call):
    with pytest.raises(TransactionManagementError):
        locked_call.get(call.pk)


def test_the_row_is_locked_until_the_transaction_ends(call):
    """Another connection that will not wait for the row finds it taken while the read's transaction lasts."""
    outcome: list[str] = []

    def other_connection():
        try:
            with transaction.atomic():
                Call.objects.select_for_update(nowait=True).get(pk=call.pk)
            outcome.append("got it")
        except OperationalError:
            outcome.append("locked")
        finally:
            connection.close()

    with transaction.atomic():
        locked_call.get(call.pk)
        thread = threading.Thread(target=other_connection)
        thread.start()
        thread.join(10)
    thread = threading.Thread(target=other_connection)
    thread.start()
    thread.join(10)
    assert outcome == ["locked", "got it"]


def test_the_querysets_own_filters_still_apply(call):
    """Values fixed in the queryset are compiled in with it: only the id varies."""
    ringing = CompiledGet(lambda: Call.objects.filter(state=State.RINGING))
    answered = CompiledGet(lambda: Call.objects.filter(state=State.ANSWERED))
    assert ringing.get(call.pk).pk == call.pk
    with pytest.raises(Call.DoesNotExist):
        answered.get(call.pk)


def raw_row(**fields) -> WebhookEvent:
    return WebhookEvent(kind="status", route="status", path="/api/voice/status?call=1", call_sid="CA" + "2" * 32,
                        params={"CallStatus": "ringing", "Note": "naïve \ufffd"}, headers={"User-Agent": "x"},
                        signature_valid=True, status="processed", attempts=1, **fields)


def test_an_insert_writes_the_row_save_writes(call):
    by_save, by_insert = raw_row(dedupe_key="a"), raw_row(dedupe_key="b")
    by_save.save()
    compiled.insert(by_insert)
    assert by_insert.pk and not by_insert._state.adding
    ignored = {"id", "dedupe_key", "received_at"}
    stored = {row.pk: {k: v for k, v in values(row).items() if k not in ignored}
              for row in WebhookEvent.objects.all()}
    assert stored[by_insert.pk] == stored[by_save.pk]
    assert stored[by_insert.pk]["params"] == {"CallStatus": "ringing", "Note": "naïve \ufffd"}
    assert WebhookEvent.objects.get(pk=by_insert.pk).received_at is not None  # auto_now_add, as save() sets it
    event = CallEvent(call=call, kind="Status", from_state="dialing", to_state="ringing", data={"effects": []})
    compiled.insert(event)
    assert CallEvent.objects.get(pk=event.pk).call_id == call.pk


def test_a_database_default_left_unset_is_written_by_save_itself(call):
    row = WebhookEvent(kind="status", path="/api/voice/status", signature_valid=True)  # no route: its db_default
    compiled.insert(row)
    assert WebhookEvent.objects.get(pk=row.pk).route == ""


def test_a_duplicate_key_is_the_integrity_error_save_raises(call):
    compiled.insert(raw_row(dedupe_key="same"))
    with pytest.raises(IntegrityError), transaction.atomic():
        compiled.insert(raw_row(dedupe_key="same"))
    assert WebhookEvent.objects.count() == 1


def test_an_update_writes_only_the_fields_it_names(call):
    call.last_sequence = 9
    call.answered_by = "machine_start"  # changed in memory, not named: stays as stored
    compiled.update(call, {"last_sequence"})
    stored = Call.objects.get(pk=call.pk)
    assert (stored.last_sequence, stored.answered_by) == (9, "human")


def test_an_update_of_a_row_that_is_gone_raises_as_save_does(call):
    Call.objects.filter(pk=call.pk).delete()
    call.last_sequence = 5
    with pytest.raises(DatabaseError):
        compiled.update(call, ["last_sequence"])


def test_an_unsaved_related_object_is_refused_as_save_refuses_it(call):
    unsaved = raw_row(dedupe_key="c")
    event = CallEvent(call=call, kind="Status", webhook=unsaved)
    with pytest.raises(ValueError, match="unsaved related object"):
        compiled.insert(event)
    compiled.insert(unsaved)  # saved after being assigned: its id is taken, as save() takes it
    compiled.insert(event)
    assert CallEvent.objects.get(pk=event.pk).webhook_id == unsaved.pk


def test_an_error_caught_inside_an_inner_atomic_leaves_the_outer_transaction_usable(call):
    compiled.insert(raw_row(dedupe_key="same"))
    with transaction.atomic():
        try:
            with transaction.atomic():
                compiled.insert(raw_row(dedupe_key="same"))
        except IntegrityError:
            pass
        compiled.insert(raw_row(dedupe_key="other"))
    assert WebhookEvent.objects.count() == 2


def test_an_update_names_a_foreign_key_by_name_or_attname_once(call):
    session = factories.make_session(campaign=call.campaign)
    call.bridged_to = session
    compiled.update(call, ["bridged_to", "bridged_to_id"])
    assert Call.objects.get(pk=call.pk).bridged_to_id == session.pk


def test_an_id_no_column_can_hold_is_simply_not_found(call):
    with transaction.atomic(), pytest.raises(Call.DoesNotExist):
        locked_call.get(10**30)


def test_querysets_it_cannot_reproduce_are_refused(call):
    from django.db.models import Count

    counted = CompiledGet(lambda: Call.objects.annotate(n=Count("events")))
    with pytest.raises(ValueError, match="model rows only"):
        counted.get(call.pk)


def test_a_read_of_some_fields_defers_the_rest_as_only_does(call, django_assert_num_queries):
    peek = CompiledGet(lambda: Call.objects.only("campaign_id", "bridged_to_id", "dialed_for_id"))
    with django_assert_num_queries(1):
        got = peek.get(call.pk)
        assert (got.campaign_id, got.bridged_to_id) == (call.campaign_id, None)
    assert got.get_deferred_fields() == Call.objects.only(
        "campaign_id", "bridged_to_id", "dialed_for_id").get(pk=call.pk).get_deferred_fields()


def prepared_statements() -> list[str]:
    """The statements PostgreSQL holds prepared for this connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [statement for (statement,) in cursor.fetchall()]


def test_postgresql_prepares_the_statements_and_they_still_give_what_the_orm_gives(
        call, settings, django_assert_num_queries):
    """From their second use on a connection the read, the insert and the update run as prepared statements
    (PostgreSQL plans them once); what they read and write does not change, and the query log still shows them
    with their values (tests count and read it)."""
    settings.DATABASE_PREPARED_STATEMENTS = True
    expected = Call.objects.select_related("campaign", "contact").get(pk=call.pk)
    for attempt in range(8):
        with transaction.atomic(), django_assert_num_queries(3) as captured:
            got = locked_call.get(call.pk)
            got.last_sequence = 10 + attempt
            compiled.update(got, ["last_sequence"])
            compiled.insert(CallEvent(call=got, kind="Status", from_state="ringing", to_state="ringing"))
        assert values(got) == {**values(expected), "last_sequence": 10 + attempt}
        assert values(got.contact) == values(expected.contact)
        read, update, insert = (query["sql"] for query in captured.captured_queries)
        assert f'"voice_call"."id" = {call.pk}' in read
        assert update.startswith('UPDATE "voice_call" SET "last_sequence" =') and update.endswith(
            f'= {10 + attempt} WHERE "id" = {call.pk}')
        assert "'Status'" in insert
    assert Call.objects.get(pk=call.pk).last_sequence == 17
    assert CallEvent.objects.filter(call=call).count() == 8
    prepared = prepared_statements()
    assert any(s.startswith('SELECT "voice_call"."id"') and "FOR NO KEY UPDATE" in s for s in prepared)
    assert any(s.startswith('UPDATE "voice_call" SET "last_sequence" = $1') for s in prepared)
    assert any(s.startswith('INSERT INTO "voice_callevent"') for s in prepared)


def test_the_orms_rollbacks_to_a_savepoint_keep_them_prepared(call, settings):
    """psycopg throws its prepared statements away on every ROLLBACK it watches; the ORM's savepoint rollbacks
    (a human nobody could take yet, a duplicate delivery) must not cost the hot path its prepared statements."""
    settings.DATABASE_PREPARED_STATEMENTS = True
    with transaction.atomic():
        for _ in range(3):
            locked_call.get(call.pk)
        with pytest.raises(ValueError), transaction.atomic():
            Call.objects.filter(pk=call.pk).update(last_sequence=99)
            raise ValueError("rolled back to the savepoint")
        assert any(s.startswith('SELECT "voice_call"."id"') for s in prepared_statements())
        assert locked_call.get(call.pk).last_sequence == 3


def test_a_column_type_changed_under_a_running_process_does_not_break_reads_outside_a_transaction(call, settings):
    """A migration that changes a column's type makes PostgreSQL refuse the statements prepared before it
    ("cached plan must not change result type"). Outside a transaction (the outbox) nothing would ever make
    psycopg forget them: the read drops them and runs again."""
    settings.DATABASE_PREPARED_STATEMENTS = True
    read = CompiledGet(lambda: Call.objects.select_related("contact"))
    for _ in range(3):
        assert read.get(call.pk).contact.name == "Ada Lovelace"  # prepared from the second
    length = Contact._meta.get_field("name").max_length
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE campaigns_contact ALTER COLUMN name TYPE varchar({length + 1})")
    try:
        for _ in range(3):
            assert read.get(call.pk).contact.name == "Ada Lovelace"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE campaigns_contact ALTER COLUMN name TYPE varchar({length})")
    assert read.get(call.pk).contact.name == "Ada Lovelace"


def test_with_prepared_statements_off_nothing_is_prepared(call, settings):
    """DATABASE_PREPARED_STATEMENTS=false (a pooler that cannot keep them): the same reads, nothing prepared."""
    settings.DATABASE_PREPARED_STATEMENTS = True
    with compiled._cursor(connection) as cursor:
        cursor.execute("DEALLOCATE ALL")  # through the preparing cursor, so psycopg forgets them too
    settings.DATABASE_PREPARED_STATEMENTS = False
    for _ in range(8):
        with transaction.atomic():
            assert locked_call.get(call.pk).contact.name == "Ada Lovelace"
    assert prepared_statements() == []
