"""The template editor in a real browser: create a template and watch the preview update as you type."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_dashboard import SCREENSHOTS, _nav, _sign_up


@pytest.mark.browser
def test_create_a_template_and_watch_the_preview_update(page: Page, base_url: str, console_errors):
    page.set_viewport_size({"width": 1360, "height": 1000})
    _sign_up(page)

    _nav(page, "Templates").click()
    expect(page).to_have_url(re.compile(r"/templates$"))
    expect(page.get_by_text("No templates yet")).to_be_visible()
    page.get_by_role("link", name="New template").click()
    expect(page).to_have_url(re.compile(r"/templates/new$"))

    page.get_by_label("Name").fill("Welcome")
    page.get_by_label("Subject").fill("Welcome, {{first_name}}!")
    page.get_by_label("Variables").fill('[{"name": "code", "sample": "S-42", "required": true}]')
    page.get_by_label("HTML").fill("<h1>Hello {{first_name}}</h1><p>Your code: <b>{{code}}</b></p>")

    # The preview is rendered through htmx with the samples, inside a sandboxed iframe.
    frame = page.frame_locator("#preview-html")
    expect(frame.locator("h1")).to_have_text("Hello Ada")
    expect(frame.locator("b")).to_have_text("S-42")
    expect(page.locator("#preview-subject")).to_have_text("Welcome, Ada!")
    assert page.locator("#preview-html").get_attribute("sandbox") == ""

    # Typing more updates it again, without a page load.
    page.evaluate("window.__same_document = true")
    page.get_by_label("HTML").press_sequentially("<p>{{{code}}} &amp; bye</p>", delay=10)
    expect(frame.locator("p").last).to_have_text("S-42 & bye")

    # A script in the template does not run in the preview.
    page.get_by_label("HTML").fill("<p id='s'>safe</p><script>document.getElementById('s').textContent='ran'</script>")
    expect(frame.locator("#s")).to_have_text("safe")

    # A syntax error shows in the preview pane, not as an error page.
    page.get_by_label("HTML").fill("<p>{{#open}} never closed</p>")
    expect(page.locator("#preview-error")).to_contain_text("is not a valid template")
    assert page.evaluate("window.__same_document") is True

    page.get_by_label("HTML").fill("<h1>Hello {{first_name}}</h1><p>Your code: <b>{{code}}</b></p>")
    expect(frame.locator("b")).to_have_text("S-42")
    # caret="initial": Playwright's caret-hiding style would be injected into the preview frame, whose
    # inherited CSP (style-src 'self') refuses it with a console error.
    page.screenshot(path=f"{SCREENSHOTS}/postline-template-editor.png", full_page=True, caret="initial")

    # Create it, then save a change: version 2, listed under Versions.
    page.get_by_role("button", name="Create template").click()
    expect(page.locator(".flash-success")).to_contain_text("Template “Welcome” created.")
    expect(page).to_have_url(re.compile(r"/templates/tmpl_[A-Za-z0-9]+$"))
    expect(frame.locator("h1")).to_have_text("Hello Ada")
    page.get_by_label("Subject").fill("Hi {{first_name}}, your code")
    expect(page.locator("#preview-subject")).to_have_text("Hi Ada, your code")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-success")).to_contain_text("as version 2")
    expect(page.locator("#template-versions tbody tr")).to_have_count(2)

    _nav(page, "Templates").click()
    expect(page.locator("#templates-table tbody tr")).to_have_count(1)
    expect(page.locator("#templates-table")).to_contain_text("v2")
    # The one expected console message: Chromium refusing the template's <script> in the sandboxed preview.
    blocked = [e for e in console_errors if e.startswith("Blocked script execution in ")]
    assert blocked and [e for e in console_errors if e not in blocked] == []
