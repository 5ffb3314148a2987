"""Dashboard fixtures: a browser-like client that reads CSRF tokens from the pages it is served."""
from __future__ import annotations

import re

import pytest

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


class DashboardClient:
    """The Flask test client used the way a person uses the dashboard: GET the page with the form, then
    POST the form with the CSRF token it carried."""

    def __init__(self, client):
        self.client = client

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def submit(self, form_page: str, action: str | None = None, data: dict | None = None, **kw):
        page = self.client.get(form_page)
        assert page.status_code == 200, (form_page, page.status_code)
        payload = {"csrf_token": csrf_from(page.get_data(as_text=True))}
        payload.update(data or {})
        return self.client.post(action or form_page, data=payload, **kw)

    def login(self, email: str, password: str, next_: str | None = None):
        page = "/login" + (f"?next={next_}" if next_ else "")
        data = {"email": email, "password": password}
        if next_ is not None:
            data["next"] = next_
        return self.submit(page, "/login", data)


@pytest.fixture
def web(client):
    return DashboardClient(client)


@pytest.fixture
def user(web, account):
    """``web`` logged in as the owner of ``account``."""
    resp = web.login(account["email"], account["password"])
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    return web
