"""Messages in a real browser: send a test email through the form (test mode), deliver it with the
dispatcher in-process, and read the detail page: status, timeline, SMTP attempts, sandboxed preview."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

SCREENSHOTS = "/tmp"






def _dispatch(app) -> dict:
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        return dispatch_email()


@pytest.mark.browser
def test_send_a_test_email_and_follow_it(page: Page, base_url: str, app, console_errors, sign_up):
    page.set_viewport_size({"width": 1360, "height": 900})
    sign_up("Messages Browser Co")

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Messages").click()
    expect(page).to_have_url(re.compile(r"/messages$"))
    expect(page.get_by_text("No messages yet")).to_be_visible()

    # New accounts start in live mode: switch to test mode (the simulator decides the outcome).
    if page.locator(".test-banner").count() == 0:
        page.get_by_role("button", name="Test", exact=True).click()
    expect(page.locator(".test-banner")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/messages$"))

    page.get_by_role("link", name="Send a test email").first.click()
    expect(page.get_by_role("heading", name="Send a test email")).to_be_visible()
    expect(page.get_by_label("To")).to_have_value("delivered@simulator.test")

    # A bad address is refused inline, on its field; what was typed stays.
    page.get_by_label("From").fill("Acme <hello@acme.example>")
    page.get_by_label("To").fill("not-an-email")
    page.get_by_label("Subject").fill("Welcome to Acme")
    page.get_by_label("Text").fill("Hello Ada,\n\nWelcome aboard.")
    page.get_by_role("button", name="Send email").click()
    expect(page.locator(".has-error .field-error")).to_have_text(re.compile(r"^To is not a valid email address"))
    expect(page.get_by_label("Subject")).to_have_value("Welcome to Acme")
    assert [e for e in console_errors if "422" not in e] == []  # the refused form is a 422 by design
    console_errors.clear()

    page.get_by_label("To").fill("opened@simulator.test")
    page.get_by_label("HTML").fill('<h1>Welcome, Ada</h1><p>Glad to have you.</p>'
                                   '<script>document.title="pwned"</script>')
    page.get_by_label("Tags").fill("welcome")
    page.get_by_role("button", name="Send email").click()
    expect(page).to_have_url(re.compile(r"/messages/msg_[A-Za-z0-9]+$"))
    expect(page.locator(".flash-success")).to_contain_text("Email queued in test mode")
    expect(page.locator("#message-status")).to_have_text("queued")

    totals = _dispatch(app)
    assert totals, totals
    page.reload()
    expect(page.locator("#message-status")).to_have_text("delivered")
    timeline = page.locator("#timeline .timeline-item")
    expect(timeline).to_have_count(4)
    expect(timeline.nth(3)).to_have_attribute("data-type", "message.opened")
    expect(timeline.nth(3)).to_contain_text("opened")
    expect(page.locator("#attempts tbody tr")).to_have_count(1)
    expect(page.locator("#attempts tbody tr")).to_contain_text("simulator")
    expect(page.locator("#attempts tbody tr")).to_contain_text("250")
    expect(page.locator("#recipients tbody tr")).to_contain_text("opened@simulator.test")

    # The preview renders the HTML in a sandbox: its script never runs.
    preview = page.frame_locator("iframe.msg-preview")
    expect(preview.get_by_role("heading", name="Welcome, Ada")).to_be_visible()
    assert page.title() != "pwned"
    expect(page.locator("#text-part")).to_contain_text("Welcome aboard.")
    # Headless Chromium leaves an iframe below the fold blank in a full-page shot: make the viewport as
    # tall as the page instead, so everything (the preview too) is painted.
    page.set_viewport_size({"width": 1360, "height": page.evaluate("document.documentElement.scrollHeight")})
    expect(preview.get_by_text("Glad to have you.")).to_be_visible()
    page.screenshot(path=f"{SCREENSHOTS}/messages-detail.png")
    page.set_viewport_size({"width": 1360, "height": 900})
    blocked = [e for e in console_errors if "Blocked script execution" in e and "sandboxed" in e]
    assert [e for e in console_errors if e not in blocked] == []
    console_errors.clear()

    # Back to the list: the htmx status filter swaps the table only.
    page.locator("a.back").click()
    expect(page).to_have_url(re.compile(r"/messages$"))
    rows = page.locator("#messages-table tbody tr")
    expect(rows).to_have_count(1)
    page.evaluate("window.__same_document = true")
    page.get_by_label("Status").select_option("bounced")
    expect(page).to_have_url(re.compile(r"/messages\?status=bounced"))
    expect(page.get_by_text("No matching messages")).to_be_visible()
    page.get_by_label("Status").select_option("delivered")
    expect(rows).to_have_count(1)
    assert page.evaluate("window.__same_document") is True
    page.screenshot(path=f"{SCREENSHOTS}/messages-list.png", full_page=True)
    assert console_errors == []
