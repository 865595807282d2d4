"""The pacer's pure numerical code: no ORM, no network, no clock.

- `model`: the inputs a caller fills (agents, lines, settings, measured statistics) and the prediction model;
- `exposure`: the distribution of free agents minus answered humans on the prediction grid;
- `decisions`: `decide()`, how many lines to dial and which to release, in every dial mode;
- `population`: the contact population model (the reference B2B list) that the simulator and the Twilio
  sandbox both play out;
- `simulation`: the pacing simulator (`simulate_pacing`), the real decisions in simulated time.

The app's worker (`voice.pacer`, `voice.dialer`) and the simulator call `decide` alike; the sandbox imports
only `population`.
"""

from voice.pacing.decisions import NOTHING, PacingDecision, decide, governed_lines, threshold_for
from voice.pacing.model import (
    MODES,
    QUANTILE_LEVELS,
    REFERENCE_PRIOR,
    AgentView,
    LineView,
    Mode,
    PacingSettings,
    PacingStats,
    blend,
)

__all__ = [
    "MODES", "NOTHING", "QUANTILE_LEVELS", "REFERENCE_PRIOR", "AgentView", "LineView", "Mode", "PacingDecision",
    "PacingSettings", "PacingStats", "blend", "decide", "governed_lines", "threshold_for",
]
