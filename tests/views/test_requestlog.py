"""Request log pages: filters, keyset paging, htmx fragments, detail, tenant isolation."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app.ids import new_id
from app.timeutil import utcnow

_IDS = re.compile(r'href="/requests/(req_[A-Za-z0-9]+)"')


def _table(resp) -> str:
    html = resp.get_data(as_text=True)
    return html[html.index('<div id="requests-table"'):]


def _ids(resp) -> list[str]:
    return _IDS.findall(_table(resp))


def _insert(app, organization_id: str, rows: list[dict]) -> list[str]:
    """Request-log rows as app.api.machinery writes them, oldest first."""
    from sqlalchemy import insert

    from app.api.models import RequestLog
    from app.extensions import db

    base = utcnow() - timedelta(hours=1)
    ids = []
    with app.app_context():
        for i, row in enumerate(rows):
            values = {"id": new_id("req", 16), "organization_id": organization_id, "mode": "live",
                      "method": "GET", "path": "/api/v1/contacts", "status": 200, "duration_ms": 3,
                      "key_prefix": "sk_live_abcd", "created_at": base + timedelta(seconds=i)}
            values.update(row)
            db.session.execute(insert(RequestLog.__table__).values(**values))
            ids.append(values["id"])
        db.session.commit()
    return ids


def test_requests_made_with_the_api_are_listed(user, api):
    created = api.post("/contacts", json={"email": "log@example.com"}, headers={"Idempotency-Key": "abc-123"})
    missing = api.get("/contacts/con_doesnotexist")
    resp = user.get("/requests")
    assert resp.status_code == 200
    ids = _ids(resp)
    assert ids[:2] == [missing.headers["X-Request-Id"], created.headers["X-Request-Id"]]  # newest first

    detail = user.get(f"/requests/{created.headers['X-Request-Id']}")
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    for text in ("POST", "/api/v1/contacts", "201", " ms", api.key[:12] + "…", "abc-123",
                 "&#34;email&#34;: &#34;log@example.com&#34;", "&#34;object&#34;: &#34;contact&#34;"):
        assert text in html, text
    assert api.key not in html

    html = user.get(f"/requests/{missing.headers['X-Request-Id']}").get_data(as_text=True)
    assert "404" in html and "not_found" in html


def test_filters_by_status_class_code_and_path(app, user, account):
    ok, bad, gone, boom, other = _insert(app, account["organization_id"], [
        {"status": 200}, {"status": 400, "path": "/api/v1/messages/email", "method": "POST"},
        {"status": 404, "path": "/api/v1/contacts/con_x"}, {"status": 500}, {"status": 201, "path": "/api/v1/lists"},
    ])
    assert set(_ids(user.get("/requests?status=2xx"))) == {ok, other}
    assert set(_ids(user.get("/requests?status=4xx"))) == {bad, gone}
    assert set(_ids(user.get("/requests?status=4XX"))) == {bad, gone}
    assert _ids(user.get("/requests?status=404")) == [gone]
    assert _ids(user.get("/requests?status=5xx")) == [boom]
    assert set(_ids(user.get("/requests?path=/api/v1/contacts"))) == {ok, gone, boom}
    assert _ids(user.get("/requests?path=/api/v1/contacts&status=4xx")) == [gone]
    assert _ids(user.get("/requests?path=/api/v1/contacts/con_")) == [gone]
    assert _ids(user.get("/requests?path=/api/v1/%25")) == []  # LIKE wildcards are literal
    resp = user.get("/requests?status=teapot")
    assert resp.status_code == 200
    assert "Status must be a class such as 2xx" in resp.get_data(as_text=True)
    assert _ids(resp) == []


def test_filter_changes_are_htmx_fragments(app, user, account):
    _insert(app, account["organization_id"], [{"status": 200}, {"status": 404}])
    fragment = user.get("/requests?status=4xx", headers={"HX-Request": "true"})
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="requests-table"')
    assert "<html" not in html and len(_ids(fragment)) == 1
    assert "HX-Request" in fragment.headers["Vary"]
    # A boosted navigation and a history restore need the whole page.
    for headers in ({"HX-Request": "true", "HX-Boosted": "true"},
                    {"HX-Request": "true", "HX-History-Restore-Request": "true"}, {}):
        page = user.get("/requests?status=4xx", headers=headers)
        assert "<html" in page.get_data(as_text=True)
        assert "HX-Request" in page.headers["Vary"]
    # The filter form asks htmx for that fragment and pushes the URL.
    page = user.get("/requests").get_data(as_text=True)
    assert 'hx-get="/requests" hx-target="#requests-table" hx-swap="outerHTML"' in page
    assert 'hx-push-url="true"' in page


def test_keyset_paging_older_and_newer(app, user, account):
    ids = _insert(app, account["organization_id"], [{} for _ in range(30)])
    newest_first = list(reversed(ids))
    first = user.get("/requests")
    assert _ids(first) == newest_first[:25]
    html = _table(first)
    assert f"starting_after={newest_first[24]}" in html and "ending_before" not in html

    second = user.get(f"/requests?starting_after={newest_first[24]}")
    assert _ids(second) == newest_first[25:]
    html = _table(second)
    assert "starting_after=" not in html  # no older page
    assert f"ending_before={newest_first[25]}" in html

    back = user.get(f"/requests?ending_before={newest_first[25]}")
    assert _ids(back) == newest_first[:25]

    # Paging keeps the filters.
    _insert(app, account["organization_id"], [{"status": 404} for _ in range(27)])
    html = user.get("/requests?status=404").get_data(as_text=True)
    assert re.search(r'href="/requests\?status=404&amp;starting_after=req_', html)

    assert "No such object for cursor" in _table(user.get("/requests?starting_after=req_unknown"))


def test_mode_switch_shows_the_other_modes_requests(app, user, account, test_api):
    live = _insert(app, account["organization_id"], [{"status": 200}])
    test = test_api.get("/contacts").headers["X-Request-Id"]
    assert _ids(user.get("/requests")) == live
    user.submit("/requests", "/session/mode", {"mode": "test", "next": "/requests"})
    page = user.get("/requests")
    assert _ids(page) == [test]
    assert "Test mode" in page.get_data(as_text=True)


def test_other_organizations_requests_are_not_found(app, user, account, other_account):
    (theirs,) = _insert(app, other_account["organization_id"], [{"status": 200, "path": "/api/v1/secret"}])
    (mine,) = _insert(app, account["organization_id"], [{"status": 200}])
    assert user.get(f"/requests/{theirs}").status_code == 404
    assert user.get(f"/requests/{mine}").status_code == 200
    assert _ids(user.get("/requests")) == [mine]
    assert "/api/v1/secret" not in _table(user.get("/requests?path=/api/v1/secret"))


@pytest.mark.parametrize("path", ["/requests", "/requests/req_x", "/api-keys", "/contacts", "/contacts/con_x",
                                  "/settings", "/messages"])
def test_pages_need_a_login(client, path):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")
