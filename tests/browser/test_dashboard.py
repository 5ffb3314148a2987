"""The dashboard in a real browser: sign up, create a key (secret shown once), revoke it, and the API
refuses it; the request log filters through htmx."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import settled

SCREENSHOTS = "/tmp"


def _api_get(base_url: str, path: str, secret: str) -> tuple[int, dict]:
    request = urllib.request.Request(base_url + "/api/v1" + path, headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())






def _nav(page: Page, label: str):
    return page.get_by_role("navigation", name="Sections").get_by_role("link", name=label)


def _sign_up(page: Page) -> str:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signup$"))
    page.get_by_label("Organization name").fill("Acme Browser Co")
    page.get_by_label("Work email").fill(email)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Welcome to Postline")).to_be_visible()
    expect(page.locator("#live-key")).to_have_text(re.compile(r"^sk_live_[A-Za-z0-9]{40}$"))
    return email


@pytest.mark.browser
def test_key_lifecycle_in_the_browser(page: Page, base_url: str, console_errors):
    page.set_viewport_size({"width": 1360, "height": 900})
    _sign_up(page)

    # Create a key from the API keys page (boosted navigation, boosted form).
    _nav(page, "API keys").click()
    expect(page).to_have_url(re.compile(r"/api-keys$"))
    page.get_by_text("Create a key").click()
    page.get_by_label("Name").fill("Browser key")
    page.get_by_text("Read only", exact=True).click()
    page.get_by_role("button", name="Create key").click()

    secret_box = page.locator("#new-key-secret")
    expect(secret_box).to_be_visible()
    secret = secret_box.inner_text().strip()
    assert re.fullmatch(r"sk_live_[A-Za-z0-9]{40}", secret)
    assert page.content().count(secret) == 1
    expect(page.get_by_text("Copy the secret now")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/postline-api-keys-secret.png", full_page=True)

    # The copy button copies it (clipboard permission granted for this origin).
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page.locator("[data-copy='#new-key-secret']").click()
    expect(page.locator("[data-copy='#new-key-secret']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # The key works …
    assert _api_get(base_url, "/contacts", secret)[0] == 200

    # … is listed, and the secret is gone on reload and from every browser store.
    row = page.locator("tr", has_text="Browser key")
    expect(row).to_contain_text(secret[:12] + "…")
    expect(row).to_contain_text("live")
    assert secret not in page.evaluate("JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")
    page.reload()
    expect(page.locator("tr", has_text="Browser key")).to_be_visible()
    assert secret not in page.content()
    assert page.locator("#new-key-secret").count() == 0

    # Away and back (history restore): still not shown.
    _nav(page, "Overview").click()
    expect(page.get_by_role("heading", name="Acme Browser Co")).to_be_visible()
    page.go_back()
    expect(page.locator("tr", has_text="Browser key")).to_be_visible()
    assert secret not in page.content()
    page.screenshot(path=f"{SCREENSHOTS}/postline-api-keys.png", full_page=True)

    # Revoke it, through the confirmation page.
    page.locator("tr", has_text="Browser key").get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", name="Revoke “Browser key”?")).to_be_visible()
    page.get_by_role("button", name="Revoke key").click()
    expect(page).to_have_url(re.compile(r"/api-keys$"))
    expect(page.locator(".flash-success")).to_contain_text("was revoked")
    expect(page.locator("tr", has_text="Browser key")).to_have_count(0)

    # The API now refuses the secret.
    status, body = _api_get(base_url, "/contacts", secret)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert console_errors == []


@pytest.mark.browser
def test_request_log_filters_with_htmx(page: Page, base_url: str, console_errors):
    page.set_viewport_size({"width": 1360, "height": 900})
    _sign_up(page)
    secret = page.locator("#live-key").inner_text().strip()
    assert _api_get(base_url, "/contacts", secret)[0] == 200
    assert _api_get(base_url, "/contacts/con_missing", secret)[0] == 404
    assert _api_get(base_url, "/contacts?limit=500", secret)[0] == 400

    settled(page, _nav(page, "Request log").click)
    rows = page.locator("#requests-table tbody tr")
    expect(rows).to_have_count(3)

    # Changing the filter swaps only the table (the page is not reloaded) and pushes the URL.
    page.evaluate("window.__same_document = true")
    page.get_by_label("Status").select_option("4xx")
    expect(page).to_have_url(re.compile(r"/requests\?status=4xx"))
    expect(rows).to_have_count(2)
    assert page.evaluate("window.__same_document") is True
    page.get_by_label("Path starts with").fill("/api/v1/contacts/con_")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"path=%2Fapi%2Fv1%2Fcontacts%2Fcon_"))
    page.get_by_label("Path starts with").fill("")
    expect(rows).to_have_count(2)
    page.get_by_label("Status").select_option("")
    expect(rows).to_have_count(3)
    page.screenshot(path=f"{SCREENSHOTS}/postline-request-log.png", full_page=True)

    # Back restores the earlier filter.
    page.go_back()
    expect(rows).to_have_count(2)

    # The request detail.
    page.locator("#requests-table tbody tr", has_text="con_missing").get_by_role("link").click()
    expect(page.get_by_text("Request ID", exact=True)).to_be_visible()
    expect(page.locator("#response-body")).to_contain_text('"code": "not_found"')
    expect(page.locator(".props")).to_contain_text(secret[:12] + "…")
    page.screenshot(path=f"{SCREENSHOTS}/postline-request-detail.png", full_page=True)

    # The test-mode toggle shows the other mode's (empty) log.
    page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator(".test-banner")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/requests$"))
    expect(page.get_by_text("No API requests yet")).to_be_visible()
    assert console_errors == []
