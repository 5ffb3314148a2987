import pytest
from sqlalchemy import update

from tests.helpers import ApiClient, make_account


@pytest.fixture
def fast_api(app, client):
    """A live admin key whose organization has a high custom rate limit (for tests that make many calls)."""
    from app.accounts.models import Organization
    from app.extensions import db

    with app.app_context():
        acct = make_account(plan="enterprise")
        db.session.execute(update(Organization).where(Organization.id == acct["organization_id"])
                           .values(rate_limit_per_second=1000, rate_limit_burst=1000))
        db.session.commit()
    return ApiClient(client, acct["live_api_key"])
