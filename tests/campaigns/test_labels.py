"""The words for call results: one set, in the models' choices and in the pages' JavaScript."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.conf import settings

from campaigns.labels import CALL_STATE_LABELS, OUTCOME_LABELS
from campaigns.models import Contact
from voice.models import Call
from voice.states import Outcome, State


def test_every_result_and_stage_of_the_state_machine_has_words():
    assert set(OUTCOME_LABELS) == {o.value for o in Outcome if o.value}
    assert set(CALL_STATE_LABELS) == {s.value for s in State}
    for label in (*OUTCOME_LABELS.values(), *CALL_STATE_LABELS.values()):
        assert "_" not in label and label[0].isupper()


def test_admin_filters_and_lists_show_the_words_not_the_codes():
    contact_choices = dict(Contact._meta.get_field("last_outcome").choices)
    call_choices = dict(Call._meta.get_field("outcome").choices)
    assert contact_choices["hung_up_on_hold"] == call_choices["hung_up_on_hold"] == "Hung up while waiting"
    assert contact_choices[""] == "Not called yet"


def test_the_pages_use_the_same_words():
    source = (Path(settings.BASE_DIR) / "static" / "js" / "common.js").read_text()
    block = source[source.index("const OUTCOMES = {"):]
    block = block[:block.index("};")]
    in_js = dict(re.findall(r'(\w+): \["([^"]+)"', block))
    assert in_js == OUTCOME_LABELS, json.dumps(in_js, indent=1)
