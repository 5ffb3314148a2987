"""Playwright in Debian's Chromium against the real app served on a free localhost port."""
from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def live_server(app):
    """The app behind a real HTTP server (threaded, like production) for the browser to talk to."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def base_url(live_server):
    """pytest-base-url's fixture, pointed at the live server (so ``page.goto("/signup")`` works)."""
    return live_server


@pytest.fixture
def console_errors(page):
    """Every console error (a CSP violation, a failed request, a script error) fails the test."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield errors


@pytest.fixture
def sign_up(page):
    """``sign_up("Acme")``: a new organization and its owner through the sign-up page; returns the email."""
    import uuid

    from playwright.sync_api import expect

    def _sign_up(organization: str = "Browser Co") -> str:
        email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        page.goto("/signup")
        page.get_by_label("Organization name").fill(organization)
        page.get_by_label("Work email").fill(email)
        page.get_by_label("Password").fill("correct horse battery staple")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="Welcome to Postline")).to_be_visible()
        return email

    return _sign_up


def settled(page, action, target: str | None = None) -> None:
    """Do ``action`` (something that makes htmx swap) and wait until htmx has settled and processed the new
    content (of the swap into ``#target``, when given), so the next interaction finds its htmx behaviour
    attached: a select changed in the moment between a swap and its settle fires no request."""
    from playwright.sync_api import expect

    page.evaluate("""(id) => {
        delete document.documentElement.dataset.settled;
        const on = (event) => {
            const t = event.detail && event.detail.target;
            if (id && !(t && t.id === id)) return;
            document.documentElement.dataset.settled = '1';
            document.body.removeEventListener('htmx:afterSettle', on);
        };
        document.body.addEventListener('htmx:afterSettle', on);
    }""", target)
    action()
    expect(page.locator("html")).to_have_attribute("data-settled", "1")

