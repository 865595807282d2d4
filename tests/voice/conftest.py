import pytest

from tests import factories


@pytest.fixture
def floor(fake_twilio):
    """A running campaign with one ready agent in their room and a few contacts."""
    agent = factories.make_user()
    campaign = factories.make_campaign(agents=[agent], lines_per_agent=1, min_ring_s=0)
    for _ in range(3):
        factories.make_contact(campaign=campaign)
    session = factories.make_session(campaign=campaign, agent=agent)
    return campaign, session
