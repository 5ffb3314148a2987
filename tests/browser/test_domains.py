"""Domains in a real browser: add a domain, see the records to copy, publish them, verify through htmx."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.dns_server import dns_server, local_dns  # noqa: F401  (fixtures)

SCREENSHOTS = "/tmp"






def _text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


@pytest.mark.browser
def test_add_a_domain_and_see_its_records(page: Page, base_url: str, local_dns, console_errors, sign_up):
    page.set_viewport_size({"width": 1360, "height": 900})
    sign_up("Domains Browser Co")

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Domains").click()
    expect(page).to_have_url(re.compile(r"/domains$"))
    expect(page.get_by_text("No domains yet")).to_be_visible()

    # A bad name is refused inline.
    page.get_by_label("Domain").fill("not a domain")
    page.get_by_role("button", name="Add domain").click()
    expect(page.locator(".field-error")).to_have_text("Domain must not contain spaces.")
    assert [e for e in console_errors if "422" not in e] == []  # the refused form is a 422 by design
    console_errors.clear()

    page.get_by_label("Domain").fill("Mail.Browser-Test.example")
    page.get_by_role("button", name="Add domain").click()
    expect(page).to_have_url(re.compile(r"/domains/dom_[A-Za-z0-9]+$"))
    expect(page.get_by_role("heading", name="mail.browser-test.example")).to_be_visible()
    expect(page.locator(".flash-success")).to_contain_text("Domain mail.browser-test.example added.")

    # The records, each copyable, all pending.
    expect(page.locator("#record-dkim-name")).to_have_text(
        re.compile(r"^pl[a-z0-9]+\._domainkey\.mail\.browser-test\.example$"))
    expect(page.locator("#record-dkim-value")).to_have_text(re.compile(r"^v=DKIM1; k=rsa; p=MIIB[A-Za-z0-9+/=]+$"))
    expect(page.locator("#record-spf-name")).to_have_text("pl-bounces.mail.browser-test.example")
    expect(page.locator("#record-spf-value")).to_have_text(re.compile(r"^v=spf1 include:\S+ ~all$"))
    expect(page.locator("#record-return_path-name")).to_have_text("pl-bounces.mail.browser-test.example")
    expect(page.locator("#record-dmarc-value")).to_have_text("v=DMARC1; p=none;")
    expect(page.locator("#domain-records tbody tr[data-status='pending']")).to_have_count(5)
    page.screenshot(path=f"{SCREENSHOTS}/postline-domain-records.png", full_page=True)

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page.locator("[data-copy='#record-dkim-value']").click()
    expect(page.locator("[data-copy='#record-dkim-value']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == _text(page, "#record-dkim-value")

    # Publish what the page says, then "Verify DNS" swaps the records table in place (htmx, no reload).
    for purpose in ("dkim", "spf", "dmarc"):
        local_dns.add(_text(page, f"#record-{purpose}-name"), "TXT", _text(page, f"#record-{purpose}-value"))
    local_dns.add(_text(page, "#record-return_path-name"), "MX", f"10 {_text(page, '#record-return_path-value')}.")
    page.evaluate("window.__same_document = true")
    page.get_by_role("button", name="Verify DNS").click()
    expect(page.locator("#record-dkim")).to_have_attribute("data-status", "verified")
    expect(page.locator("#record-spf")).to_have_attribute("data-status", "verified")
    expect(page.locator("#record-return_path")).to_have_attribute("data-status", "verified")
    expect(page.locator("#record-tracking")).to_have_attribute("data-status", "pending")
    expect(page.locator("#domain-status")).to_contain_text("verified")
    assert page.evaluate("window.__same_document") is True
    page.screenshot(path=f"{SCREENSHOTS}/postline-domain-verified.png", full_page=True)

    # The list shows it verified.
    page.get_by_role("link", name="Domains").first.click()
    row = page.locator("#domains-table tr", has_text="mail.browser-test.example")
    expect(row).to_contain_text("verified")
    expect(row).to_contain_text("4 of 5")
    assert console_errors == []
