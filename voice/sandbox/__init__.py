"""The Twilio sandbox: a local carrier emulator that speaks Twilio's REST wire format and sends signed webhooks.

An outsider to the app (DESIGN.md §6): it imports nothing from Django or the app and talks to it only over
HTTP, so the app reaches it through the real twilio-python client with only TWILIO_API_BASE_URL changed.

    from voice.sandbox import Sandbox, SandboxConfig
    with Sandbox(SandboxConfig(time_scale=50, seed=1)) as sandbox:
        sandbox.base_url  # -> http://127.0.0.1:<port>

or `python manage.py twilio_sandbox --port 8100`. Full user guide: docs/sandbox.md.

Magic test numbers (valid for libphonenumber; NANP 555-01xx are fictional):

    +12025550100  human: answers at 3 s, AMD "human" after 2 s, talks 30 s, waits 30 s on hold
    +12025550101  answering machine, DetectMessageEnd -> machine_end_beep after an 8 s greeting
    +12025550102  answering machine -> machine_end_silence
    +12025550103  answering machine -> machine_end_other
    +12025550104  fax
    +12025550105  silent callee: AMD "unknown" after 5 s
    +12025550106  never answers: no-answer after the call's Timeout (SipResponseCode 487)
    +12025550107  busy after 4 s of ringing
    +12025550108  failed (unroutable)
    +12025550109  impatient human: hangs up 3 s after answering unless bridged
    +15005550001  invalid: the create fails with 21211 (Twilio's own magic number)

Any other number draws its behaviour from the configured population (seeded, reproducible).
"""

from voice.pacing.population import Behaviour, Population
from voice.sandbox.behaviours import INVALID_NUMBER, MAGIC_NUMBERS
from voice.sandbox.config import SandboxConfig
from voice.sandbox.server import Sandbox

__all__ = ["INVALID_NUMBER", "MAGIC_NUMBERS", "Behaviour", "Population", "Sandbox", "SandboxConfig"]
