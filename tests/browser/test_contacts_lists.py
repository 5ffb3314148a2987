"""Contacts and lists in a real browser: add contacts, search them, build a dynamic list with the rule
builder and watch its live count follow each edit, then open the list and erase a contact."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import settled

SCREENSHOTS = "/tmp"


def _add_contact(page: Page, email: str, first: str, tags: str) -> None:
    page.goto("/contacts")
    details = page.locator("#new-contact")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("First name").fill(first)
    page.get_by_label("Tags").fill(tags)
    page.get_by_role("button", name="Save contact").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Contact {email} created.")


@pytest.mark.browser
def test_build_a_segment_and_watch_its_count(page: Page, base_url: str, console_errors, sign_up):
    page.set_viewport_size({"width": 1360, "height": 900})
    sign_up("Segments Browser Co")
    _add_contact(page, "ada@example.com", "Ada", "beta, vip")
    _add_contact(page, "alan@example.com", "Alan", "beta")
    _add_contact(page, "grace@example.com", "Grace", "vip")

    # Search on the contacts page (htmx swaps the table as you type).
    page.goto("/contacts")
    page.get_by_placeholder("Email or name").fill("gra")
    expect(page.locator("#contacts-table tbody tr")).to_have_count(1)
    expect(page.locator("#contacts-table")).to_contain_text("grace@example.com")
    # The table can already show one row for "gr" while the request for "gra" is in flight: wait for the
    # last one (it pushes the URL), or its late answer may land after the click below.
    expect(page).to_have_url(re.compile(r"q=gra"))
    page.wait_for_load_state("networkidle")

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Lists").click()
    expect(page).to_have_url(re.compile(r"/lists$"))
    page.get_by_role("link", name="Dynamic list").click()
    page.get_by_label("Name").fill("Beta testers")

    count = page.locator("#segment-count")
    # One row to start with: "Tags contains ___" matches everyone until a value is typed.
    page.get_by_label("Value 1").fill("beta")
    expect(count.locator("[data-count]")).to_have_attribute("data-count", "2")

    # Each re-render of the builder is waited for until htmx has settled: a field changed in the moment
    # between a swap and its settle would fire no request.
    settled(page, page.get_by_role("button", name="+ Add condition").click, "rule-builder")
    expect(page.get_by_label("Field 2")).to_be_visible()
    settled(page, lambda: page.get_by_label("Field 2").select_option("first_name"), "rule-builder")
    # The row is re-rendered for its field: names offer ordering ops that tags do not.
    expect(page.get_by_label("Operator 2").locator("option[value=gt]")).to_have_count(1)
    page.get_by_label("Operator 2").select_option("contains")
    page.get_by_label("Value 2").fill("ada")
    expect(count.locator("[data-count]")).to_have_attribute("data-count", "1")

    page.get_by_label("Match").select_option("any")
    expect(count.locator("[data-count]")).to_have_attribute("data-count", "2")
    page.get_by_label("Value 2").fill("gra")
    expect(count.locator("[data-count]")).to_have_attribute("data-count", "3")

    # An invalid value is explained in place of the count.
    settled(page, lambda: page.get_by_label("Field 2").select_option("score"), "rule-builder")
    expect(page.get_by_label("Operator 2").locator("option[value=contains]")).to_have_count(0)
    page.get_by_label("Operator 2").select_option("gt")
    page.get_by_label("Value 2").fill("lots")
    expect(count).to_contain_text("must be a number")
    page.screenshot(path=f"{SCREENSHOTS}/postline-segment-builder.png", full_page=True)

    page.get_by_role("button", name="Remove condition 2").click()
    expect(page.get_by_label("Field 2")).to_have_count(0)
    expect(count.locator("[data-count]")).to_have_attribute("data-count", "2")

    page.get_by_role("button", name="Create list").click()
    expect(page.locator(".flash-success")).to_contain_text("List Beta testers created.")
    expect(page.locator("#member-count")).to_have_text("2")
    expect(page.locator("#members-table tbody tr")).to_have_count(2)

    # Erase Ada: the dynamic list follows.
    page.get_by_role("link", name="ada@example.com").click()
    page.get_by_role("link", name="Erase contact").click()
    page.get_by_role("button", name="Erase contact").click()
    expect(page.locator(".flash-success")).to_contain_text("erased")
    page.goto("/lists")
    expect(page.locator("#lists-table")).to_contain_text("Beta testers")
    expect(page.locator("#lists-table td[data-count]")).to_have_text("1")
    assert console_errors == []
