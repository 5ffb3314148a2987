"""Domain pages: add through the API's schema and service, records to copy, verify (htmx and plain),
delete, permissions and isolation."""
from __future__ import annotations

import re

from tests.dns_server import dns_server, local_dns  # noqa: F401  (fixtures)
from tests.helpers import PASSWORD, make_account

_IDS = re.compile(r'href="/domains/(dom_[A-Za-z0-9]+)"')


def _table(resp) -> str:
    html = resp.get_data(as_text=True)
    return html[html.index('<div id="domains-table"'):]


def _add(user, name):
    return user.submit("/domains", data={"domain": name})


def test_add_then_detail_shows_the_records(user, api):
    resp = _add(user, "Mail.Example.com")
    assert resp.status_code == 303
    domain_id = resp.headers["Location"].rsplit("/", 1)[1]
    html = user.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Domain mail.example.com added." in html
    body = api.get(f"/domains/{domain_id}").get_json()
    for record in body["records"]:
        assert f'id="record-{record["purpose"]}-name">{record["name"]}</code>' in html
        assert f'id="record-{record["purpose"]}-value">{record["value"]}</code>' in html
        assert f'data-copy="#record-{record["purpose"]}-value"' in html
    assert "Verify DNS" in html and f'hx-post="/domains/{domain_id}/verify"' in html
    assert html.count('badge badge-warn">pending</span>') >= 5
    assert _IDS.findall(_table(user.get("/domains"))) == [domain_id]
    assert "nav-link is-active" in user.get("/domains").get_data(as_text=True)


def test_add_shows_errors_inline(user, api):
    resp = _add(user, "not a domain")
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert '<div class="field has-error">' in html and "Domain must not contain spaces." in html
    resp = _add(user, "ex_ample.com")
    assert resp.status_code == 422 and "may contain only letters, digits and hyphens" in resp.get_data(as_text=True)
    resp = _add(user, "1.2.3.4")
    assert resp.status_code == 422 and "not an IP address" in resp.get_data(as_text=True)
    resp = _add(user, "")
    assert resp.status_code == 422 and "must be a domain name" in resp.get_data(as_text=True)
    api.post("/domains", json={"domain": "taken.example.com"})
    resp = _add(user, "TAKEN.example.com")
    assert resp.status_code == 422 and "already added" in resp.get_data(as_text=True)
    assert len(api.get("/domains").get_json()["data"]) == 1


def test_add_needs_csrf(user, client):
    assert client.post("/domains", data={"domain": "nocsrf.example.com"}).status_code == 400
    assert "nocsrf" not in user.get("/domains").get_data(as_text=True)


def test_verify_with_htmx_swaps_the_records(user, api, local_dns, client):
    d = api.post("/domains", json={"domain": "verify.example.com"}).get_json()
    for r in d["records"]:
        if r["purpose"] in ("dkim", "spf"):
            local_dns.add(r["name"], r["type"], r["value"])
    page = user.get(f"/domains/{d['id']}").get_data(as_text=True)
    from tests.views.conftest import csrf_from
    resp = client.post(f"/domains/{d['id']}/verify", data={"csrf_token": csrf_from(page)},
                       headers={"HX-Request": "true"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="domain-records"')
    assert re.search(r'id="record-dkim" data-purpose="dkim" data-status="verified"', html)
    assert re.search(r'id="record-spf" data-purpose="spf" data-status="verified"', html)
    assert re.search(r'id="record-return_path" data-purpose="return_path" data-status="pending"', html)
    assert "No MX record at pl-bounces.verify.example.com yet." in html
    assert "<html" not in html and "HX-Request" in resp.headers["Vary"]
    assert api.get(f"/domains/{d['id']}").get_json()["status"] == "pending"


def test_verify_without_htmx_redirects_with_a_message(user, api, local_dns):
    d = api.post("/domains", json={"domain": "plain.example.com"}).get_json()
    for r in d["records"]:
        value = f"{r['priority']} {r['value']}." if r["type"] == "MX" else r["value"]
        local_dns.add(r["name"], r["type"], value + ("." if r["type"] == "CNAME" else ""))
    resp = user.submit(f"/domains/{d['id']}", f"/domains/{d['id']}/verify")
    assert resp.status_code == 303 and resp.headers["Location"] == f"/domains/{d['id']}"
    html = user.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Checked DNS: plain.example.com is verified." in html
    assert "all records verified" in html
    assert "Never" not in _table(user.get("/domains"))


def test_delete(user, api):
    d = api.post("/domains", json={"domain": "bye.example.com"}).get_json()
    confirm = user.get(f"/domains/{d['id']}/delete")
    assert confirm.status_code == 200 and "Delete “bye.example.com”?" in confirm.get_data(as_text=True)
    resp = user.submit(f"/domains/{d['id']}/delete")
    assert resp.status_code == 303 and resp.headers["Location"] == "/domains"
    assert "Domain bye.example.com was deleted." in user.get("/domains").get_data(as_text=True)
    assert api.get(f"/domains/{d['id']}").status_code == 404


def test_viewer_reads_only(app, web, client, account, api):
    from app.accounts.service import add_member
    from app.extensions import db
    d = api.post("/domains", json={"domain": "viewer.example.com"}).get_json()
    with app.app_context():
        viewer = make_account()
        add_member(account["organization_id"], viewer["email"], "viewer")
        db.session.commit()
    web.login(viewer["email"], PASSWORD)
    web.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    html = client.get("/domains").get_data(as_text=True)
    assert "Add a domain" not in html and "viewer.example.com" in html
    detail = client.get(f"/domains/{d['id']}").get_data(as_text=True)
    assert "Verify DNS" not in detail and d["records"][0]["value"] in detail
    assert web.submit("/domains", "/domains", {"domain": "x.example.com"}).status_code == 403
    assert web.submit(f"/domains/{d['id']}", f"/domains/{d['id']}/verify").status_code == 403
    assert web.submit(f"/domains/{d['id']}", f"/domains/{d['id']}/delete").status_code == 403


def test_other_organizations_domains_are_not_found(user, other_api):
    theirs = other_api.post("/domains", json={"domain": "secret.example.com"}).get_json()
    for path in (f"/domains/{theirs['id']}", f"/domains/{theirs['id']}/delete"):
        resp = user.get(path)
        assert resp.status_code == 404 and "secret.example.com" not in resp.get_data(as_text=True)
    assert user.submit("/domains", f"/domains/{theirs['id']}/verify").status_code == 404
    assert theirs["id"] not in _table(user.get("/domains"))


def test_same_domains_in_both_modes(user, api):
    d = api.post("/domains", json={"domain": "modes.example.com"}).get_json()
    user.submit("/domains", "/session/mode", {"mode": "test", "next": "/domains"})
    assert _IDS.findall(_table(user.get("/domains"))) == [d["id"]]


def test_every_form_has_csrf(user, api):
    d = api.post("/domains", json={"domain": "forms.example.com"}).get_json()
    for path in ("/domains", f"/domains/{d['id']}", f"/domains/{d['id']}/delete"):
        html = user.get(path).get_data(as_text=True)
        posts = [f for f in html.split("<form")[1:] if 'method="post"' in f.split(">")[0]]
        assert posts, path
        for form in posts:
            assert 'name="csrf_token"' in form.split("</form>")[0], (path, form[:200])
        assert "<script>" not in html and " style=" not in html
