"""Webhooks in a real browser: create an endpoint with the event picker, copy the secret shown once, send a
test ping to a real receiver, open the delivery and retry it."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from standardwebhooks import Webhook

from tests.api.test_webhooks import Receiver

SCREENSHOTS = "/tmp"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()






@pytest.mark.browser
def test_create_ping_and_retry(page: Page, base_url: str, receiver, console_errors, sign_up):
    page.set_viewport_size({"width": 1360, "height": 900})
    sign_up("Webhooks Browser Co")
    page.get_by_role("button", name="Test", exact=True).click()  # test mode: http:// receivers are fine
    expect(page.locator(".test-banner")).to_be_visible()

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Webhooks").click()
    expect(page).to_have_url(re.compile(r"/webhooks$"))
    expect(page.get_by_text("No webhook endpoints yet")).to_be_visible()

    page.locator("#create-webhook summary").click()
    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_label("Description").fill("Order service")
    page.locator("#event-picker input[value='message.*']").check()
    page.locator("#event-picker input[value='contact.created']").check()
    page.get_by_role("button", name="Add endpoint").click()

    expect(page.locator("#new-secret")).to_contain_text("Copy the signing secret now")
    secret = page.locator("#signing-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    expect(page.locator("#endpoint-events")).to_contain_text("message.*")
    page.screenshot(path=f"{SCREENSHOTS}/postline-webhook-created.png", full_page=True)

    page.get_by_role("button", name="Send test event").click()
    expect(page.locator(".flash-success")).to_contain_text("Test event delivered: HTTP 200.")
    expect(page.locator("#attempt-count")).to_have_text("1")
    expect(page.locator("#attempts")).to_contain_text("webhook-signature: v1,")
    assert len(receiver.requests) == 1
    Webhook(secret).verify(receiver.requests[0]["body"], receiver.requests[0]["headers"])

    # Back on the endpoint, the delivery is in the table; open it and retry.
    page.get_by_role("link", name=receiver.url).first.click()
    row = page.locator("#deliveries tbody tr").first
    expect(row).to_have_attribute("data-status", "succeeded")
    row.get_by_role("link", name="webhook.test").click()
    expect(page.locator("#delivery-status")).to_contain_text("succeeded")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".flash-success")).to_contain_text("Delivered again: HTTP 200.")
    expect(page.locator("#attempt-count")).to_have_text("2")
    expect(page.locator("#attempt-2")).to_contain_text("manual")
    page.screenshot(path=f"{SCREENSHOTS}/postline-webhook-delivery.png", full_page=True)
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["headers"]["webhook-id"] == receiver.requests[1]["headers"]["webhook-id"]
    assert console_errors == []
