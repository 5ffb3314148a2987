"""The one place that scopes every query: criteria on select/update/delete, fail-closed, stamped inserts."""
import pytest
from sqlalchemy import delete, func, select, update

from app.tenancy import TenancyError, tenant_scope, unscoped
from tests.helpers import make_account


@pytest.fixture
def two_orgs(app):
    from app.contacts.models import Contact
    from app.extensions import db

    with app.app_context():
        a, b = make_account(), make_account()
        for org, mode, email in ((a, "live", "a@example.com"), (a, "test", "a-test@example.com"),
                                 (b, "live", "b@example.com")):
            with tenant_scope(org["organization_id"], mode):
                db.session.add(Contact(email=email, attributes={}, tags=[], metadata_={}))
                db.session.commit()
    return a["organization_id"], b["organization_id"]


def _emails(db, Contact):
    return sorted(db.session.execute(select(Contact.email)).scalars())


def test_selects_are_scoped_by_org_and_mode(app, two_orgs):
    from app.contacts.models import Contact
    from app.extensions import db

    a, b = two_orgs
    with app.app_context():
        with tenant_scope(a, "live"):
            assert _emails(db, Contact) == ["a@example.com"]
        with tenant_scope(a, "test"):
            assert _emails(db, Contact) == ["a-test@example.com"]
        with tenant_scope(b, "live"):
            assert _emails(db, Contact) == ["b@example.com"]
            assert db.session.execute(select(func.count(Contact.id))).scalar_one() == 1


def test_get_by_primary_key_of_another_tenant_is_none(app, two_orgs):
    from app.contacts.models import Contact
    from app.extensions import db

    a, b = two_orgs
    with app.app_context():
        with tenant_scope(b):
            theirs = db.session.execute(select(Contact.id)).scalar_one()
        db.session.remove()
        with tenant_scope(a):
            assert db.session.get(Contact, theirs) is None


def test_bulk_update_and_delete_are_scoped(app, two_orgs):
    from app.contacts.models import Contact
    from app.extensions import db

    a, b = two_orgs
    with app.app_context():
        with tenant_scope(a):
            db.session.execute(update(Contact).values(first_name="touched"))
            db.session.execute(delete(Contact).where(Contact.email == "b@example.com"))
            db.session.commit()
        with tenant_scope(b):
            row = db.session.execute(select(Contact)).scalar_one()
            assert row.email == "b@example.com" and row.first_name is None


def test_query_without_tenant_fails_closed(app, two_orgs):
    from app.contacts.models import Contact
    from app.extensions import db

    with app.app_context():
        with pytest.raises(TenancyError):
            db.session.execute(select(Contact)).all()
        db.session.rollback()
        with unscoped():
            assert len(db.session.execute(select(Contact)).all()) >= 3


def test_insert_is_stamped_and_foreign_rows_refused(app, two_orgs):
    from app.contacts.models import Contact
    from app.extensions import db

    a, b = two_orgs
    with app.app_context():
        with tenant_scope(a, "test"):
            c = Contact(email="new@example.com", attributes={}, tags=[], metadata_={})
            db.session.add(c)
            db.session.flush()
            assert (c.organization_id, c.mode) == (a, "test")
            db.session.rollback()
            db.session.add(Contact(organization_id=b, email="sneak@example.com", attributes={}, tags=[],
                                   metadata_={}))
            with pytest.raises(TenancyError):
                db.session.flush()
            db.session.rollback()
