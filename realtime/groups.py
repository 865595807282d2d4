"""Channel-layer group names, in one place. ASCII with dots, as Channels requires."""


def campaign_group(campaign_id: int) -> str:
    return f"campaign.{campaign_id}"


def wallboard_group(campaign_id: int) -> str:
    return f"wallboard.{campaign_id}"
