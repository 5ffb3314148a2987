"""Suppression pages: list, filters, paging, add through the API's schema and service, remove, CSRF,
roles, isolation."""
from __future__ import annotations

import re

from tests.helpers import PASSWORD, make_account

_IDS = re.compile(r'data-suppression-id="(sup_[A-Za-z0-9]+)"')


def _table(resp) -> str:
    html = resp.get_data(as_text=True)
    return html[html.index('<div id="suppressions-table"'):]


def _ids(resp) -> list[str]:
    return _IDS.findall(_table(resp))


def _add(api, channel, recipient, reason="manual"):
    resp = api.post("/suppressions", json={"channel": channel, "recipient": recipient, "reason": reason})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def test_nav_and_empty_page(user):
    resp = user.get("/suppressions")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'class="nav-link is-active"\s+href="/suppressions" aria-current="page">', html)
    assert "No suppressions" in html and "Add a suppression" in html


def test_list_and_filters(user, api):
    a = _add(api, "email", "alpha@example.com", "bounce")
    b = _add(api, "email", "beta@example.org", "complaint")
    c = _add(api, "sms", "+14155550100", "stop_keyword")
    d = _add(api, "email", "delta@example.com", "unsubscribe")
    page = user.get("/suppressions")
    assert _ids(page) == [d, c, b, a]
    table = _table(page)
    assert "alpha@example.com" in table and "Hard bounce" in table and "STOP reply" in table
    assert _ids(user.get("/suppressions?channel=email")) == [d, b, a]
    assert _ids(user.get("/suppressions?channel=sms")) == [c]
    assert _ids(user.get("/suppressions?reason=complaint")) == [b]
    assert _ids(user.get("/suppressions?search=example.com")) == [d, a]
    assert _ids(user.get("/suppressions?search=ALPHA")) == [a]
    assert _ids(user.get("/suppressions?search=%2B1415")) == [c]
    assert _ids(user.get("/suppressions?search=%25")) == []  # LIKE wildcards are literal
    assert _ids(user.get("/suppressions?search=_")) == []
    assert _ids(user.get("/suppressions?channel=email&reason=bounce&search=alp")) == [a]
    empty = user.get("/suppressions?reason=erased")
    assert "No matching suppressions" in _table(empty)
    bad = user.get("/suppressions?channel=fax")
    assert bad.status_code == 200 and "Channel must be email or sms." in _table(bad)

    fragment = user.get("/suppressions?channel=sms", headers={"HX-Request": "true"})
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="suppressions-table"')
    assert _ids(fragment) == [c]
    assert "HX-Request" in fragment.headers["Vary"]


def test_next_page_keeps_filters(app, user, account):
    from app.extensions import db
    from app.suppressions.service import add_suppressions
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        add_suppressions([{"channel": "email", "recipient": f"p{i}@example.com", "reason": "bounce"}
                          for i in range(30)])
        add_suppressions([{"channel": "sms", "recipient": "+14155550101", "reason": "manual"}])
        db.session.commit()
    first = user.get("/suppressions?channel=email")
    assert len(_ids(first)) == 25
    older = re.search(r'href="(/suppressions\?channel=email&amp;starting_after=sup_[A-Za-z0-9]+)"', _table(first))
    second = user.get(older.group(1).replace("&amp;", "&"))
    assert len(_ids(second)) == 5 and not set(_ids(second)) & set(_ids(first))


def test_add(user, api):
    resp = user.submit("/suppressions", data={"channel": "email", "recipient": " Ada@Example.com ",
                                              "reason": "complaint"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/suppressions"
    html = user.get("/suppressions").get_data(as_text=True)
    assert "ada@example.com is suppressed" in html
    body = api.get("/suppressions?recipient=ada@example.com").get_json()["data"]
    assert [(s["channel"], s["reason"]) for s in body] == [("email", "complaint")]

    again = user.submit("/suppressions", data={"channel": "email", "recipient": "ada@example.com"})
    assert again.status_code == 303
    assert "ada@example.com was already suppressed (complaint)" in user.get("/suppressions").get_data(as_text=True)

    sms = user.submit("/suppressions", data={"channel": "sms", "recipient": "+1 415 555 0123", "reason": "manual"})
    assert sms.status_code == 303
    assert api.get("/suppressions?channel=sms").get_json()["data"][0]["recipient"] == "+14155550123"


def test_add_shows_errors_inline(user, api):
    resp = user.submit("/suppressions", data={"channel": "email", "recipient": "not an email", "reason": "manual"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "Recipient is not a valid email address" in html and 'id="new-suppression" open' in html
    assert re.search(r'class="field has-error">\s*<label[^>]*for="recipient"', html)

    resp = user.submit("/suppressions", data={"channel": "sms", "recipient": "555", "reason": "manual"})
    assert resp.status_code == 422 and "Recipient must be an E.164 phone number" in resp.get_data(as_text=True)

    resp = user.submit("/suppressions", data={"channel": "email", "recipient": "", "reason": "manual"})
    assert resp.status_code == 422 and "Enter an email address or a phone number." in resp.get_data(as_text=True)

    resp = user.submit("/suppressions", data={"channel": "email", "recipient": "a@example.com", "reason": "bored"})
    assert resp.status_code == 422 and "Not a valid choice" in resp.get_data(as_text=True)
    assert api.get("/suppressions").get_json()["data"] == []


def test_remove(user, api):
    keep = _add(api, "email", "keep@example.com")
    gone = _add(api, "email", "gone@example.com")
    resp = user.submit("/suppressions?channel=email", f"/suppressions/{gone}/delete",
                       {"next": "/suppressions?channel=email"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/suppressions?channel=email"
    html = user.get("/suppressions").get_data(as_text=True)
    assert "gone@example.com is no longer suppressed" in html
    assert _ids(user.get("/suppressions")) == [keep]
    assert user.submit("/suppressions", f"/suppressions/{gone}/delete").status_code == 404
    # `next` can only bring you back to this page.
    resp = user.submit("/suppressions", f"/suppressions/{keep}/delete", {"next": "https://evil.example/"})
    assert resp.headers["Location"] == "/suppressions"


def test_forms_need_csrf(user, client, api):
    sid = _add(api, "email", "csrf@example.com")
    html = client.get("/suppressions").get_data(as_text=True)
    forms = [f for f in html.split("<form")[1:] if 'method="post"' in f.split(">")[0]]
    assert any(f"/suppressions/{sid}/delete" in f for f in forms)
    for form in forms:
        assert 'name="csrf_token"' in form.split("</form>")[0], form[:200]
    assert client.post("/suppressions", data={"channel": "email", "recipient": "x@example.com"}).status_code == 400
    assert client.post("/suppressions", data={"channel": "email", "recipient": "x@example.com",
                                              "csrf_token": "forged"}).status_code == 400
    assert client.post(f"/suppressions/{sid}/delete").status_code == 400
    assert [s["recipient"] for s in api.get("/suppressions").get_json()["data"]] == ["csrf@example.com"]


def test_viewers_read_only(app, web, client, account, api):
    from app.accounts.service import add_member
    from app.extensions import db
    sid = _add(api, "email", "ro@example.com")
    with app.app_context():
        viewer = make_account()
        add_member(account["organization_id"], viewer["email"], "viewer")
        db.session.commit()
    web.login(viewer["email"], PASSWORD)
    web.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    html = client.get("/suppressions").get_data(as_text=True)
    assert "ro@example.com" in html and "Add a suppression" not in html and "/delete" not in html
    assert web.submit("/suppressions", "/suppressions", {"channel": "email", "recipient": "x@example.com"}).status_code == 403
    assert web.submit("/suppressions", f"/suppressions/{sid}/delete").status_code == 403
    assert len(api.get("/suppressions").get_json()["data"]) == 1


def test_modes_and_organizations_are_separate(user, api, test_api, other_api):
    live = _add(api, "email", "live@example.com")
    test = _add(test_api, "email", "test@example.com")
    theirs = _add(other_api, "email", "theirs@example.com")
    assert _ids(user.get("/suppressions")) == [live]
    assert user.submit("/suppressions", f"/suppressions/{test}/delete").status_code == 404
    assert user.submit("/suppressions", f"/suppressions/{theirs}/delete").status_code == 404
    assert other_api.get(f"/suppressions/{theirs}").status_code == 200
    user.submit("/suppressions", "/session/mode", {"mode": "test", "next": "/suppressions"})
    assert _ids(user.get("/suppressions")) == [test]
    assert _ids(user.get("/suppressions?search=theirs")) == []
