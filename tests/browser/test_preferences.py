"""The public unsubscribe page → preference center → save, in a real browser (no login, strict CSP)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.helpers import ApiClient, make_account

SCREENSHOTS = "/tmp"


@pytest.fixture
def reader(app, client):
    """An organization with a subscribed contact, and the unsubscribe link its newsletter carried."""
    from app.tracking.tokens import unsubscribe_token

    with app.app_context():
        account = make_account()
        token = unsubscribe_token(account["organization_id"], "live", "msg_newsletter1", "reader@example.com")
    api = ApiClient(client, account["live_api_key"])
    contact = api.post("/contacts", json={"email": "reader@example.com", "phone_number": "+14155550123",
                                          "consent": {"email": True, "sms": True}}).get_json()
    return {"api": api, "contact": contact, "path": f"/u/{token}"}


@pytest.mark.browser
def test_unsubscribe_page_to_preference_center_and_save(page: Page, base_url: str, console_errors, reader):
    page.set_viewport_size({"width": 900, "height": 900})
    page.goto(reader["path"])
    expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
    expect(page.get_by_text("r•••@example.com")).to_be_visible()

    page.get_by_role("link", name="Manage your preferences").click()
    expect(page).to_have_url(f"{base_url}{reader['path']}/preferences")
    expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
    email = page.locator("#prefs-email")
    sms = page.locator("#prefs-sms")
    expect(email).to_contain_text("r•••@example.com")
    expect(sms).to_contain_text("+1•••0123")
    expect(email.get_by_label("Subscribed", exact=True)).to_be_checked()
    expect(sms.get_by_label("Subscribed", exact=True)).to_be_checked()

    # Keep texts, stop emails.
    email.get_by_label("Unsubscribed", exact=True).check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    expect(page).to_have_url(f"{base_url}{reader['path']}/preferences")  # no redirect anywhere
    expect(page.locator("#prefs-email").get_by_label("Unsubscribed", exact=True)).to_be_checked()
    expect(page.locator("#prefs-sms").get_by_label("Subscribed", exact=True)).to_be_checked()
    page.screenshot(path=f"{SCREENSHOTS}/postline-preferences-saved.png", full_page=True)

    api, contact = reader["api"], reader["contact"]
    assert api.get(f"/contacts/{contact['id']}").get_json()["consent"] == {"email": "unsubscribed",
                                                                           "sms": "subscribed"}
    sup = api.get("/suppressions?recipient=reader@example.com").get_json()["data"]
    assert [(s["reason"], s["message_id"]) for s in sup] == [("unsubscribe", "msg_newsletter1")]

    # Changed their mind: back to emails, from the same page.
    page.locator("#prefs-email").get_by_label("Subscribed", exact=True).check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
    assert api.get(f"/contacts/{contact['id']}").get_json()["consent"]["email"] == "subscribed"
    assert api.get("/suppressions?recipient=reader@example.com").get_json()["data"] == []
    assert console_errors == []
