"""Channel-layer group names, in one place. ASCII with dots, as Channels requires.

Who listens where:
- `campaign.<id>`: every agent console of the campaign. Campaign-wide news only (running, paused, ended).
- `agent.<session id>`: one agent's console. That agent's own session and the lines dialed for or bridged to
  them, so an agent's page never receives other agents' contacts, and fan-out stays one page per line.
- `wallboard.<id>`: the managers' wallboards of the campaign. Everything.
- `user.<user id>`: every socket of one user, whatever the page: told to check its access again when the user is
  removed from a campaign or deactivated (a socket that may no longer watch closes itself).
"""


def campaign_group(campaign_id: int) -> str:
    return f"campaign.{campaign_id}"


def agent_group(session_id: int) -> str:
    return f"agent.{session_id}"


def wallboard_group(campaign_id: int) -> str:
    return f"wallboard.{campaign_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"
