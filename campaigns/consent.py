"""Recording consent: which US states require every party's consent, and the state a number belongs to.

The state comes from the number's area code (libphonenumber's geocoder), which is where the line was issued;
a ported or mobile number may be elsewhere today, so a campaign that must be sure announces to everyone.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import geocoder

# All-party consent for recording a call (state wiretap statutes); Nevada and Oregon apply it to phone calls.
TWO_PARTY_CONSENT_STATES = frozenset(
    {"CA", "CT", "DE", "FL", "IL", "MD", "MA", "MI", "MT", "NV", "NH", "OR", "PA", "VT", "WA"}
)

_STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington State": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC",
}


@lru_cache(maxsize=4096)
def us_state_for(e164: str) -> str | None:
    """Two-letter state of a US number (`+14155550123` -> `CA`), None when unknown or not in the US."""
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.region_code_for_number(number) != "US":
        return None
    place = geocoder.description_for_number(number, "en")
    # The geocoder answers "San Francisco, CA" or "Pennsylvania".
    if ", " in place:
        code = place.rsplit(", ", 1)[1]
        return code if len(code) == 2 else None
    return _STATE_NAMES.get(place)


def needs_all_party_consent(e164: str) -> bool:
    return us_state_for(e164) in TWO_PARTY_CONSENT_STATES


def recording_announcement_for(campaign, phone: str) -> str:
    """What the contact hears before being put through, or "" (the campaign does not record or announce)."""
    if not campaign.record_calls:
        return ""
    policy = campaign.announce_recording
    if policy == "always" or (policy == "two_party" and needs_all_party_consent(phone)):
        return campaign.recording_announcement
    return ""
