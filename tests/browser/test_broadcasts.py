"""Broadcasts in a real browser: create a broadcast to a list (test mode), send it, let the worker's jobs
run in-process, and watch the stats card (polled by htmx) reach `sent` with its chart."""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect


def _org_id(app, email: str) -> str:
    from sqlalchemy import select

    from app.accounts.models import Membership, User
    from app.extensions import db
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == email)).scalar_one()
        return db.session.execute(select(Membership.organization_id).where(Membership.user_id == user.id)).scalar()


def _audience(app, org_id: str, n: int = 3) -> str:
    from app.contacts.models import Contact
    from app.extensions import db
    from app.lists.models import ContactList, ListMember
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(org_id, "test"):
        lst = ContactList(name="Browser fans", list_type="static", metadata_={})
        db.session.add(lst)
        contacts = [Contact(email=f"fan{i}-{uuid.uuid4().hex[:6]}@example.com", first_name=f"Fan{i}",
                            consent_email="subscribed") for i in range(n)]
        contacts.append(Contact(email=f"cold-{uuid.uuid4().hex[:6]}@example.com", consent_email="unknown"))
        db.session.add_all(contacts)
        db.session.flush()
        db.session.add_all([ListMember(list_id=lst.id, contact_id=c.id) for c in contacts])
        db.session.commit()
        return lst.id


def _run_jobs(app, org_id: str, broadcast_id: str) -> None:
    from app.broadcasts.tasks import fan_out_broadcast
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        fan_out_broadcast(broadcast_id, tenant=(org_id, "test"))
        dispatch_email()


@pytest.mark.browser
def test_create_send_and_see_stats(page: Page, base_url: str, app, console_errors, sign_up):
    page.set_viewport_size({"width": 1360, "height": 900})
    email = sign_up("Broadcast Browser Co")
    org_id = _org_id(app, email)
    _audience(app, org_id)

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Broadcasts").click()
    expect(page).to_have_url(re.compile(r"/broadcasts$"))
    if page.locator(".test-banner").count() == 0:
        page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator(".test-banner")).to_be_visible()
    expect(page.get_by_text("No broadcasts yet")).to_be_visible()

    page.locator("#new-broadcast").click()
    page.get_by_label("Name").fill("Browser launch")
    page.get_by_label("From").fill("Acme <news@acme.example>")
    page.get_by_label("Subject").fill("Hi {{first_name}}")
    page.get_by_label("HTML").fill("<p>Hello {{first_name}}</p>")
    page.get_by_label("Audience list").select_option(label="Browser fans")
    page.get_by_role("button", name="Save draft").click()
    expect(page).to_have_url(re.compile(r"/broadcasts/bc_[A-Za-z0-9]+$"))
    expect(page.locator("#broadcast-stats")).to_have_attribute("data-status", "draft")
    broadcast_id = page.url.rsplit("/", 1)[1]

    page.get_by_label("Send a proof to").fill("qa@example.com")
    page.locator("#send-proof").click()
    expect(page.locator(".flash-success")).to_contain_text("Proof sent to qa@example.com")

    page.locator("#send-now").click()
    expect(page.locator("#broadcast-stats")).to_have_attribute("data-status", "sending")
    _run_jobs(app, org_id, broadcast_id)
    # The card polls every 2 s (stats are cached up to 5 s) and stops once the broadcast is sent.
    expect(page.locator("#broadcast-stats")).to_have_attribute("data-status", "sent", timeout=20_000)
    expect(page.locator("#stat-total")).to_have_text("4", timeout=10_000)
    expect(page.locator("#stat-delivered")).to_have_text("3", timeout=10_000)
    expect(page.locator("#stat-suppressed")).to_have_text("1")
    expect(page.locator(".bc-chart g[data-key='delivered'] .bc-value")).to_have_text("3")
    page.reload()
    expect(page.locator("#broadcast-messages tbody tr")).to_have_count(4)
    assert console_errors == []
