import pytest

from tests import factories


@pytest.fixture
def manager(db):
    return factories.make_user(manager=True)


@pytest.fixture
def agent(db):
    return factories.make_user()


@pytest.fixture
def campaign(db, agent):
    return factories.make_campaign(agents=[agent])
