"""What the database and the phone helpers refuse: a contact twice, a number that is not E.164, a ring timeout
under 15 s; and what the phone helpers make of what people type."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns.models import Campaign, Contact
from campaigns.phones import InvalidPhone, normalize_phone, normalize_phone_with_zone, phone_in_search, time_zone_for
from tests import factories

pytestmark = pytest.mark.django_db


# -- database constraints -------------------------------------------------------------------------------------


def test_the_same_number_twice_in_one_campaign_is_refused_by_the_database(campaign):
    factories.make_contact(campaign=campaign, phone="+12025550123")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(campaign=campaign, phone="+12025550123")
    assert Contact.objects.filter(campaign=campaign).count() == 1


def test_the_same_number_in_two_campaigns_is_allowed(campaign):
    other = factories.make_campaign(codes=False)
    factories.make_contact(campaign=campaign, phone="+12025550123")
    factories.make_contact(campaign=other, phone="+12025550123")
    assert Contact.objects.filter(phone="+12025550123").count() == 2


@pytest.mark.parametrize("phone", ["2025550123", "(202) 555-0123", "+0123456789", "+1 202 555 0123", "+12", ""])
def test_a_number_that_is_not_e164_is_refused_by_the_database(campaign, phone):
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(campaign=campaign, phone=phone)
    assert not Contact.objects.filter(campaign=campaign).exists()


def test_a_ring_timeout_under_15_seconds_is_refused_by_the_database(campaign):
    with pytest.raises(IntegrityError), transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(ring_timeout_s=14)
    campaign.refresh_from_db()
    assert campaign.ring_timeout_s == 25


def test_a_ring_timeout_under_15_seconds_fails_validation():
    campaign = Campaign(name="Too short", ring_timeout_s=10)
    with pytest.raises(ValidationError) as caught:
        campaign.full_clean()
    assert "ring_timeout_s" in caught.value.message_dict


def test_a_ring_timeout_of_15_seconds_is_fine():
    Campaign(name="Just right", ring_timeout_s=15, window_days=[1]).full_clean()


# -- normalize_phone ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("+12025550123", "US", "+12025550123"),
    ("(202) 555-0123", "US", "+12025550123"),
    ("202.555.0123", "US", "+12025550123"),
    ("1-202-555-0123", "US", "+12025550123"),
    ("  202 555 0123  ", "US", "+12025550123"),
    ("+1 (416) 555-0123", "US", "+14165550123"),  # Canada, written internationally
    ("416 555 0123", "US", "+14165550123"),  # Canada, written nationally from the US: same +1 plan
    ("020 7946 0018", "GB", "+442079460018"),
    ("+44 20 7946 0018", "US", "+442079460018"),
    ("06 1234 5678", "IT", "+390612345678"),  # Italian numbers keep their leading zero
    ("011 44 20 7946 0018", "US", "+442079460018"),  # US international dialling prefix
    ("1-800-FLOWERS", "US", "+18003569377"),
])
def test_numbers_are_normalised_to_e164(raw, region, e164):
    assert normalize_phone(raw, region=region) == e164


@pytest.mark.parametrize(("raw", "region", "reason"), [
    ("", "US", "no number"),
    ("call reception", "US", "not a number"),
    ("12", "US", "too short"),
    ("+1 555 010 0000", "US", "not a valid number for US"),
    ("2025550123", "ZZ", "no country code"),
    ("+999 1234 5678", "US", "unknown country code"),
    ("020 7946 00", "GB", "GB"),
])
def test_invalid_numbers_are_refused_with_a_reason(raw, region, reason):
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw, region=region)
    assert reason in str(caught.value)


def test_the_quick_path_agrees_with_the_phonenumbers_library():
    """The fast path for plain input must accept exactly what the library accepts, with the same result."""
    rng = random.Random(20240611)
    regions = ["US", "CA", "GB", "DE", "IT", "FR", "AU", "IN", "BR", "JM"]
    checked = 0
    for _ in range(4000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 14)))
        raw = rng.choice([f"+{digits}", digits, f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"])
        region = rng.choice(regions)
        try:
            parsed = phonenumbers.parse(raw, region)
            expected = (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
                        if phonenumbers.is_valid_number(parsed) else None)
        except phonenumbers.NumberParseException:
            expected = None
        try:
            got = normalize_phone(raw, region=region)
        except InvalidPhone:
            got = None
        assert got == expected, (raw, region)
        checked += expected is not None
    assert checked > 100  # the sample really exercised valid numbers


# -- time zones ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("e164", "zone"), [
    ("+12025550123", "America/New_York"),
    ("+14155550123", "America/Los_Angeles"),
    ("+13125550123", "America/Chicago"),
    ("+442079460018", "Europe/London"),
    ("+390612345678", "Europe/Rome"),
    ("+18005550123", ""),  # toll-free: the whole US, so no guess
    ("+15555550123", ""),  # not a valid number
    ("not a number", ""),
])
def test_time_zone_comes_from_the_number(e164, zone):
    assert time_zone_for(e164) == zone


def test_a_number_with_several_zones_of_one_clock_gets_the_first_one_every_time():
    # UK mobiles map to the whole country (London, Jersey, Guernsey, Isle of Man: one clock).
    first = time_zone_for("+447911123456")
    assert first.startswith("Europe/")
    assert all(time_zone_for("+447911123456") == first for _ in range(3))


def test_normalize_with_zone_returns_both():
    assert normalize_phone_with_zone("(202) 555-0123", region="US") == ("+12025550123", "America/New_York")


def test_a_search_box_entry_is_read_as_a_phone_only_when_it_is_one():
    assert phone_in_search("(202) 555-0123", region="US") == "+12025550123"
    assert phone_in_search("Acme", region="US") is None
    assert phone_in_search("555", region="US") is None
