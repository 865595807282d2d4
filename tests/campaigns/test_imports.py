"""The contact import as a manager sees it: what was added, what was skipped and why, row by row."""

from __future__ import annotations

import io

import pytest

from campaigns import imports
from campaigns.imports import ContactImportError, RowIssue, contacts_import_csv, contacts_import_rows
from campaigns.models import Contact, DoNotCall
from tests import factories

pytestmark = pytest.mark.django_db


def csv_file(text: str, *, binary: bool = True, encoding: str = "utf-8"):
    text = text.strip("\n") + "\n"
    return io.BytesIO(text.encode(encoding)) if binary else io.StringIO(text)


def run(campaign, text: str, *, skip_invalid: bool = False, region: str = "US", **kwargs):
    return contacts_import_csv(campaign=campaign, file=csv_file(text), default_region=region,
                               skip_invalid=skip_invalid, **kwargs)


def contacts(campaign) -> dict[str, Contact]:
    return {c.phone: c for c in Contact.objects.filter(campaign=campaign)}


@pytest.fixture(params=["postgresql", "portable"])
def insert_path(request, monkeypatch):
    """Both ways of reading and writing: PostgreSQL's array look-ups and COPY, and the plain IN lists and
    bulk_create used on SQLite."""
    if request.param == "portable":
        monkeypatch.setattr(imports, "_on_postgresql", lambda: False)
    return request.param


GOOD = """
Phone Number,First Name,Last Name,Organisation,E-mail,Time zone,Priority,Plan,Owner
(202) 555-0123,Ada,Lovelace,Analytical Engines,ada@example.com,,5,gold,rep1
+1 415 555 0100,Grace,Hopper,Navy,,America/Chicago,,silver,
+44 20 7946 0018,Alan,Turing,,alan@example.co.uk,,,,rep2
"""


def test_a_good_file_is_imported_with_e164_numbers_zones_and_custom_fields(campaign, insert_path):
    report = run(campaign, GOOD)

    assert report.written and not report.error
    assert (report.rows, report.created, report.skipped) == (3, 3, 0)
    saved = contacts(campaign)
    assert set(saved) == {"+12025550123", "+14155550100", "+442079460018"}
    ada = saved["+12025550123"]
    assert ada.name == "Ada Lovelace"
    assert ada.company == "Analytical Engines"
    assert ada.email == "ada@example.com"
    assert ada.time_zone == "America/New_York"  # derived from the number
    assert ada.priority == 5
    assert ada.custom_fields == {"Plan": "gold", "Owner": "rep1"}
    assert ada.status == Contact.Status.PENDING
    assert ada.attempts == 0
    assert ada.created_at is not None
    grace = saved["+14155550100"]
    assert grace.time_zone == "America/Chicago"  # given by the file, kept
    assert grace.custom_fields == {"Plan": "silver"}  # empty cells are not stored
    assert saved["+442079460018"].time_zone == "Europe/London"
    assert report.columns["Phone Number"] == "phone"
    assert report.columns["Organisation"] == "company"
    assert report.columns["Plan"] == imports.CUSTOM


def test_the_default_region_reads_numbers_written_without_country_code(campaign):
    report = run(campaign, """
phone,name
020 7946 0018,Alan Turing
(202) 555-0123,Ada Lovelace
""", region="GB", skip_invalid=True)
    saved = contacts(campaign)
    assert set(saved) == {"+442079460018"}
    assert saved["+442079460018"].time_zone == "Europe/London"
    # "(202) 555-0123" is not a UK number: reported on its row, not guessed.
    assert [(i.row, i.phone) for i in report.invalid] == [(3, "(202) 555-0123")]
    assert "GB" in report.invalid[0].reason


def test_bad_rows_are_listed_with_their_row_number_and_reason(campaign):
    report = run(campaign, """
phone,name,email,timezone,priority
+12025550101,Good One,,,
not a number,Bad Phone,,,
+12025550102,Bad Email,nobody-at-example,,
+12025550103,Bad Zone,,Mars/Olympus,
+12025550104,Bad Priority,,,high
,No Phone,,,
+12025550105,Good Two,,,
""", skip_invalid=True)

    reasons = {issue.row: issue.reason for issue in report.invalid}
    assert sorted(reasons) == [3, 6, 7]
    assert "not a number" in reasons[3]
    assert "priority" in reasons[6]
    assert reasons[7] == "no phone number"
    assert report.created == 4
    assert set(contacts(campaign)) == {"+12025550101", "+12025550102", "+12025550103", "+12025550105"}


def test_a_bad_email_or_unknown_zone_costs_the_field_not_the_contact(campaign):
    """The number is what matters: the contact is imported with the field left out, and the row is a warning."""
    report = run(campaign, """
phone,name,email,timezone
+12025550102,Bad Email,nobody-at-example,America/Chicago
+12025550103,Bad Zone,zed@example.com,Mars/Olympus
""")

    assert report.written and report.created == 2 and report.invalid == []
    warnings = {issue.row: issue for issue in report.warnings}
    assert sorted(warnings) == [2, 3]
    assert warnings[2].code == RowIssue.FIELD_DROPPED
    assert "nobody-at-example" in warnings[2].reason and "left blank" in warnings[2].reason
    assert "Mars/Olympus" in warnings[3].reason and "America/New_York" in warnings[3].reason
    saved = contacts(campaign)
    assert (saved["+12025550102"].email, saved["+12025550102"].time_zone) == ("", "America/Chicago")
    assert (saved["+12025550103"].email, saved["+12025550103"].time_zone) == ("zed@example.com", "America/New_York")
    assert report.issues == []  # warnings are not "rows not imported"


def test_one_bad_row_means_nothing_is_written_when_not_skipping(campaign, insert_path):
    report = run(campaign, """
phone,name
+12025550101,Good One
+1 555 010 0000,Fictional
+12025550102,Good Two
""")

    assert not report.written
    assert report.created == 0
    assert "Nothing was imported" in report.error
    assert [(i.row, i.phone) for i in report.invalid] == [(3, "+1 555 010 0000")]
    assert not Contact.objects.filter(campaign=campaign).exists()


def test_skipping_bad_rows_writes_the_good_ones(campaign, insert_path):
    report = run(campaign, """
phone,name
+12025550101,Good One
+1 555 010 0000,Fictional
+12025550102,Good Two
""", skip_invalid=True)

    assert report.written
    assert report.created == 2
    assert set(contacts(campaign)) == {"+12025550101", "+12025550102"}
    assert [i.row for i in report.invalid] == [3]


def test_duplicates_in_the_file_and_in_the_campaign_are_skipped_and_reported(campaign, insert_path):
    factories.make_contact(campaign=campaign, phone="+12025550199", name="Already here")
    report = run(campaign, """
phone,name
+12025550101,First
(202) 555-0101,Same number written differently
+12025550199,Already in the campaign
+12025550102,New
""")

    assert report.written
    assert report.created == 2
    assert [(i.row, i.code) for i in report.duplicates] == [
        (3, RowIssue.DUPLICATE_IN_FILE), (4, RowIssue.DUPLICATE_EXISTING)]
    assert "row 2" in report.duplicates[0].reason
    assert contacts(campaign)["+12025550101"].name == "First"  # the first row wins
    assert contacts(campaign)["+12025550199"].name == "Already here"  # untouched
    assert not report.invalid


def test_do_not_call_numbers_are_skipped_and_reported(campaign, insert_path):
    other = factories.make_campaign(codes=False)
    DoNotCall.objects.create(phone="+12025550101", reason="asked to be removed")
    DoNotCall.objects.create(phone="+12025550102", campaign=campaign)
    DoNotCall.objects.create(phone="+12025550103", campaign=other)  # another campaign's list: not ours
    report = run(campaign, """
phone
+12025550101
+12025550102
+12025550103
""")

    assert [(i.row, i.code) for i in report.dnc] == [(2, RowIssue.DNC_GLOBAL), (3, RowIssue.DNC_CAMPAIGN)]
    assert "all campaigns" in report.dnc[0].reason
    assert set(contacts(campaign)) == {"+12025550103"}
    assert report.created == 1


def test_dnc_and_duplicates_do_not_block_an_all_or_nothing_import(campaign):
    DoNotCall.objects.create(phone="+12025550101")
    report = run(campaign, """
phone
+12025550101
+12025550102
+12025550102
""")
    assert report.written and report.created == 1


def test_a_file_without_a_phone_column_is_refused(campaign):
    with pytest.raises(ContactImportError) as caught:
        run(campaign, "name,company\nAda,Engines\n")
    assert "no phone column" in str(caught.value)
    assert '"name"' in str(caught.value)


def test_an_empty_file_is_refused(campaign):
    with pytest.raises(ContactImportError):
        contacts_import_csv(campaign=campaign, file=io.BytesIO(b""), default_region="US", skip_invalid=True)


def test_an_unknown_region_is_refused(campaign):
    with pytest.raises(ContactImportError) as caught:
        run(campaign, "phone\n+12025550101\n", region="XX")
    assert caught.value.fields == {"default_region": "unknown region"}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_excel_files_are_read_semicolons_bom_and_windows_encoding(campaign, encoding):
    text = "Téléphone;Nom;Société\n+33 1 42 68 53 00;Amélie Poulain;Café des 2 Moulins\n"
    # "Téléphone" is not a phone synonym: map it explicitly, as a manager would.
    report = contacts_import_csv(campaign=campaign, file=io.BytesIO(text.encode(encoding)),
                                 mapping={"Téléphone": "phone", "Nom": "name", "Société": "company"},
                                 default_region="FR", skip_invalid=False)
    assert report.created == 1
    contact = contacts(campaign)["+33142685300"]
    assert (contact.name, contact.company, contact.time_zone) == ("Amélie Poulain", "Café des 2 Moulins",
                                                                   "Europe/Paris")


def test_text_files_blank_rows_and_quoted_cells(campaign):
    report = contacts_import_csv(campaign=campaign, file=csv_file(
        'Mobile,Full Name,Notes\n+12025550101,"Lovelace, Ada","line one\nline two"\n,,\n\n+12025550102,Bob,\n',
        binary=False), default_region="US", skip_invalid=False)
    assert report.created == 2
    assert report.rows == 2
    assert contacts(campaign)["+12025550101"].custom_fields == {"Notes": "line one\nline two"}
    assert contacts(campaign)["+12025550101"].name == "Lovelace, Ada"


def test_an_unquoted_comma_that_shifts_cells_is_an_invalid_row(campaign):
    report = run(campaign, "phone,name,company\n+12025550101,Lovelace, Ada,Engines\n", skip_invalid=True)
    assert report.created == 0
    assert "more cells" in report.invalid[0].reason


def test_us_zone_abbreviations_are_read_as_their_region(campaign):
    run(campaign, "phone,tz\n+12025550101,EST\n+12025550102,pacific\n+12025550103,america/denver\n")
    zones = {phone: c.time_zone for phone, c in contacts(campaign).items()}
    assert zones == {"+12025550101": "America/New_York", "+12025550102": "America/Los_Angeles",
                     "+12025550103": "America/Denver"}


def test_a_second_phone_column_is_kept_and_used_when_the_first_is_empty(campaign):
    report = run(campaign, "Phone,Mobile\n,+12025550101\n+12025550102,+12025550103\n")
    assert set(contacts(campaign)) == {"+12025550101", "+12025550102"}
    assert contacts(campaign)["+12025550102"].custom_fields == {"Mobile": "+12025550103"}
    assert report.created == 2


def test_rows_given_as_objects_are_numbered_from_one(campaign):
    report = contacts_import_rows(campaign=campaign, rows=[
        {"phone": "+12025550101", "name": "Ada", "crm_id": "42"},
        {"Phone": "bad"},
        {"number": "(202) 555-0102", "company": "Engines"},
    ], default_region="US", skip_invalid=True)

    assert report.created == 2
    assert [(i.row, i.phone) for i in report.invalid] == [(2, "bad")]
    saved = contacts(campaign)
    assert saved["+12025550101"].custom_fields == {"crm_id": "42"}
    assert saved["+12025550102"].company == "Engines"


def test_the_import_runs_a_fixed_number_of_queries_whatever_the_size(campaign, django_assert_max_num_queries):
    rows = [{"phone": f"+1202555{n:04d}"} for n in range(1000, 3000)]
    with django_assert_max_num_queries(8):
        report = contacts_import_rows(campaign=campaign, rows=rows, default_region="US", skip_invalid=False)
    assert report.created == 2000
