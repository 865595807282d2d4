"""Phone numbers: E.164 normalisation and the time zone a number belongs to.

Both run once per row of a contact import (50,000 rows in seconds), so the common shapes of input take a fast
path: the text is stripped of the punctuation spreadsheets add and, when it is `+<digits>` or a NANP number
written nationally, the number is built directly and validated for its main region with one pass of the
library's patterns. `phonenumbers.parse` and `is_valid_number` (about three times slower) handle everything
else, and have the last word whenever the quick check says no: the fast path accepts only what the library
accepts, with the same result (a test checks this on random input).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

__all__ = ["REGIONS", "InvalidPhone", "normalize_phone", "normalize_phone_with_zone", "phone_in_search",
           "time_zone_for"]


class InvalidPhone(ValueError):
    """The text is not a number we could dial. `str(exc)` is a reason a manager can act on."""


# Region codes phonenumbers knows ("US", "GB", ...), for choices and validation of a default region.
REGIONS: frozenset[str] = frozenset(phonenumbers.SUPPORTED_REGIONS)

# What people and spreadsheets put around digits; a leading "+" is kept apart.
_FORMATTING = str.maketrans("", "", " \t()-./\u00a0\u2010\u2011\u2012\u2013\u2014")
_UNKNOWN_ZONE = "Etc/Unknown"
_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# Two instants half a year apart: zones that agree at both keep the same clock, summer time included.
_PROBE_INSTANTS = (dt.datetime(2025, 1, 15, 12, tzinfo=dt.UTC), dt.datetime(2025, 7, 15, 12, tzinfo=dt.UTC))
# Countries sharing +1: a 10-digit national number there needs no parsing beyond the digits.
_NANP_REGIONS = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])
_PARSE_REASONS = {
    NumberParseException.NOT_A_NUMBER: "not a number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def _main_region(country_code: int) -> str:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    return regions[0] if regions else "ZZ"


def _split_country_code(digits: str) -> tuple[int, str] | None:
    # Country codes are prefix-free, one to three digits.
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return None


def _quick(text: str, region: str) -> PhoneNumber | None:
    """The number for plain shapes of input, or None to let the library parse it."""
    cleaned = text.translate(_FORMATTING)
    if not cleaned.isascii():
        return None
    if cleaned[:1] == "+":
        digits = cleaned[1:]
        if not digits.isdigit() or not 7 <= len(digits) <= 15 or digits[0] == "0":
            return None
        split = _split_country_code(digits)
        if split is None:
            return None
        country_code, national = split
    elif cleaned.isdigit() and region in _NANP_REGIONS:
        # Written nationally in a +1 country: 10 digits, or 11 with the leading trunk "1".
        if len(cleaned) == 11 and cleaned[0] == "1":
            cleaned = cleaned[1:]
        if len(cleaned) != 10:
            return None
        country_code, national = 1, cleaned
    else:
        return None
    # A national number with leading zeros (Italy, ...) needs the library's bookkeeping for them.
    if not national or national[0] == "0":
        return None
    return PhoneNumber(country_code=country_code, national_number=int(national))


def _parse(raw: str, region: str) -> PhoneNumber:
    """A valid number, or InvalidPhone with the reason."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("no number")
    region = (region or "").upper()
    number = _quick(text, region)
    if number is not None:
        home = region if number.country_code == 1 and region in _NANP_REGIONS else _main_region(number.country_code)
        # One pass of the patterns for the likeliest region; the full check only when that says no.
        if phonenumbers.is_valid_number_for_region(number, home) or phonenumbers.is_valid_number(number):
            return number
    # The library reads more than the quick path does (a trunk prefix after the country code, letters,
    # extensions, international dialling prefixes), so it has the last word.
    try:
        number = phonenumbers.parse(text, region if region in REGIONS else None)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if text.startswith("+") or region in REGIONS:
                raise InvalidPhone("unknown country code") from None
            raise InvalidPhone("no country code: write it as +<country code><number>") from None
        raise InvalidPhone(_PARSE_REASONS.get(exc.error_type, "not a number")) from None
    if phonenumbers.is_valid_number(number):
        return number
    where = _main_region(number.country_code) if number.country_code != 1 or region not in _NANP_REGIONS else region
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.TOO_SHORT:
        raise InvalidPhone(f"too short for {where}")
    if possible == ValidationResult.TOO_LONG:
        raise InvalidPhone(f"too long for {where}")
    raise InvalidPhone(f"not a valid number for {where}")


def _e164(number: PhoneNumber) -> str:
    if number.italian_leading_zero:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"+{number.country_code}{number.national_number}"


def _zone(e164: str) -> str:
    digits = e164[1:]
    for size in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:size])
        if zones is not None:
            break
    else:
        return ""
    if zones[0] == _UNKNOWN_ZONE:
        return ""
    # Only the country code matched (a toll-free number, a mobile range with no area): in a country whose
    # zones keep different clocks any pick would be a guess that could put a call outside calling hours.
    if len(zones) > 1 and size <= 3 and digits[:size] in _COUNTRY_CODES and not _same_clock(zones):
        return ""
    # The table lists an area's zones sorted, so the first one is a stable choice.
    return zones[0]


@functools.cache
def _same_clock(zones: tuple[str, ...]) -> bool:
    offsets = set()
    for name in zones:
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return False
        offsets.add(tuple(instant.astimezone(zone).utcoffset() for instant in _PROBE_INSTANTS))
    return len(offsets) == 1


def normalize_phone(raw: str, *, region: str) -> str:
    """`raw` in E.164 (`+12025550123`). Numbers without a country code are read as numbers of `region`
    (an ISO 3166 code such as "US"). Raises InvalidPhone with a human reason."""
    return _e164(_parse(raw, region))


def normalize_phone_with_zone(raw: str, *, region: str) -> tuple[str, str]:
    """`(e164, iana_zone)` from one parse: what the import needs for a row that names no time zone."""
    e164 = _e164(_parse(raw, region))
    return e164, _zone(e164)


def time_zone_for(e164: str) -> str:
    """The IANA time zone of a number: its area's zone (the first, in the library's sorted order, where an area
    spans several). "" when unknown, and when the number only tells the country and that country keeps
    several clocks (a US toll-free number, a Russian mobile): a guess could put calls outside calling hours."""
    try:
        return _zone(_e164(_parse(e164, "ZZ")))
    except InvalidPhone:
        return ""


def phone_in_search(term: str, *, region: str) -> str | None:
    """The E.164 form of a search box entry that is a phone number ("(202) 555-0123"), else None: lets the
    admin find contacts stored in E.164 by the number as people write it."""
    if sum(ch.isdigit() for ch in term) < 7:
        return None
    try:
        return normalize_phone(term, region=region)
    except InvalidPhone:
        return None
