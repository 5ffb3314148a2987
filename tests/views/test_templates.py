"""Template pages: list, editor through the API's schema and service, live preview, versions, delete."""
from __future__ import annotations

import html as htmllib
import re

import pytest

from tests.views.conftest import csrf_from

_IDS = re.compile(r'href="/templates/(tmpl_[A-Za-z0-9]+)"')


def _table(resp) -> str:
    html = resp.get_data(as_text=True)
    return html[html.index('<div id="templates-table"'):]


def _form(**overrides) -> dict:
    data = {"name": "Welcome", "channel": "email", "subject": "Hi {{first_name}}",
            "html": "<p>Hello {{first_name}}, code {{code}}</p>", "text": "Hello {{first_name}}",
            "variables": '[{"name": "code", "sample": "S-123", "required": true}]', "is_active": "y"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _create(user, **overrides):
    return user.submit("/templates/new", "/templates/new", _form(**overrides))


def _preview(user, client, **overrides):
    page = user.get("/templates/new").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), **_form(**overrides)}
    return client.post("/templates/preview", data=data, headers={"HX-Request": "true"})


_CLIENT = []


def _srcdoc(html: str) -> str:
    """The preview iframe's document: fetched from its `src`, which serves it with its own CSP."""
    match = re.search(r'<iframe id="preview-html"[^>]*\ssandbox\s[^>]*src="([^"]*)"', html)
    assert match, html[:2000]
    resp = _CLIENT[-1].get(htmllib.unescape(match.group(1)))
    assert resp.status_code == 200 and "script-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "style-src 'unsafe-inline'" in resp.headers["Content-Security-Policy"]
    return resp.get_data(as_text=True)


@pytest.fixture(autouse=True)
def _remember_client(request):
    if "user" in request.fixturenames:
        _CLIENT.append(request.getfixturevalue("user"))
    yield
    _CLIENT.clear()


def test_nav_and_empty_list(user):
    resp = user.get("/templates")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert re.search(r'class="nav-link is-active"\s+href="/templates" aria-current="page">', html)
    assert "No templates yet" in html and 'href="/templates/new"' in html


def test_create_edit_versions_and_api_agree(user, api):
    resp = _create(user)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:3000]
    template_id = resp.headers["Location"].rsplit("/", 1)[1]
    page = user.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Template “Welcome” created." in page
    assert 'id="template-versions"' in page and "v1" in page
    # The preview on the page renders the samples and the sample contact, escaped, in a sandboxed iframe.
    assert _srcdoc(page).endswith("<p>Hello Ada, code S-123</p>")
    assert "script-src &#39;none&#39;" in page or "script-src 'none'" in _srcdoc(page)

    body = api.get(f"/templates/{template_id}").get_json()
    assert body["version"] == 1 and body["variables"][0] == {"name": "code", "sample": "S-123", "default": None,
                                                             "required": True}
    # Saving a name change keeps the version; a content change bumps it.
    resp = user.submit(f"/templates/{template_id}", data=_form(name="Welcome 2"))
    assert resp.status_code == 303
    assert "still version 1" in user.get(resp.headers["Location"]).get_data(as_text=True)
    resp = user.submit(f"/templates/{template_id}", data=_form(name="Welcome 2", html="<h1>{{code}}</h1>"))
    page = user.get(resp.headers["Location"]).get_data(as_text=True)
    assert "as version 2" in page
    versions = re.findall(r'<td class="mono">v(\d+)', page)
    assert versions == ["2", "1"]
    body = api.get(f"/templates/{template_id}").get_json()
    assert (body["name"], body["version"], body["html"]) == ("Welcome 2", 2, "<h1>{{code}}</h1>")
    assert [v["version"] for v in api.get(f"/templates/{template_id}/versions").get_json()["data"]] == [2, 1]
    assert _IDS.findall(_table(user.get("/templates"))) == [template_id]


def test_create_shows_errors(user):
    resp = _create(user, name="")
    assert resp.status_code == 422 and "Name is required." in resp.get_data(as_text=True)
    resp = _create(user, html="{{#open}} never closed")
    assert resp.status_code == 422
    assert "is not a valid template" in resp.get_data(as_text=True)
    resp = _create(user, variables="[{not json")
    assert resp.status_code == 422 and "is not valid JSON" in resp.get_data(as_text=True)
    resp = _create(user, variables='[{"name": "contact"}]')
    assert resp.status_code == 422 and "cannot be declared" in resp.get_data(as_text=True)
    resp = _create(user, channel="sms", text="")
    assert resp.status_code == 422 and "An SMS template needs" in resp.get_data(as_text=True)


def test_preview_renders_and_reports_errors_in_the_pane(user, client):
    resp = _preview(user, client, html="<p>{{first_name}} <b>{{code}}</b> {{{raw}}}</p>",
                    variables='[{"name": "code", "sample": "<x>"}, {"name": "raw", "sample": "<i>ok</i>"}]')
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="template-preview"')
    assert _srcdoc(html).endswith("<p>Ada <b>&lt;x&gt;</b> <i>ok</i></p>")
    assert '<p class="strong" id="preview-subject">Hi Ada</p>' in html

    for overrides, message in [
        ({"html": "{{#a}}x"}, "is not a valid template"),
        ({"variables": '[{"name": "code", "required": true}]'}, "requires the variable"),
        ({"variables": "nope"}, "is not valid JSON"),
        ({"html": "{{> /etc/passwd}}"}, "Partials"),
        ({"subject": "{{x}}\nBcc: evil@example.com"}, "single line"),
    ]:
        resp = _preview(user, client, **overrides)
        assert resp.status_code == 200
        body = resp.get_data(as_text=True)
        assert 'id="preview-error"' in body and message in htmllib.unescape(body), (overrides, body)
        assert "root:" not in body

    sms = _preview(user, client, channel="sms", text="Code {{code}}").get_data(as_text=True)
    assert '<pre class="code-body msg-text" id="preview-text">Code S-123</pre>' in sms
    assert "<iframe" not in sms


def test_preview_needs_csrf(user, client):
    resp = client.post("/templates/preview", data=_form(), headers={"HX-Request": "true"})
    assert resp.status_code == 400


def test_delete_with_confirmation(user, api):
    template_id = api.post("/templates", json={"name": "Doomed", "html": "<p>x</p>"}).get_json()["id"]
    confirm = user.get(f"/templates/{template_id}/delete")
    assert confirm.status_code == 200 and "Delete “Doomed”?" in confirm.get_data(as_text=True)
    resp = user.submit(f"/templates/{template_id}/delete")
    assert resp.status_code == 303 and resp.headers["Location"] == "/templates"
    assert "was deleted" in user.get("/templates").get_data(as_text=True)
    assert api.get(f"/templates/{template_id}").status_code == 404


def test_isolation_and_modes(user, api, test_api, other_api):
    live = api.post("/templates", json={"name": "Live", "html": "<p>x</p>"}).get_json()["id"]
    test = test_api.post("/templates", json={"name": "Test", "html": "<p>x</p>"}).get_json()["id"]
    theirs = other_api.post("/templates", json={"name": "Secret", "html": "<p>s</p>"}).get_json()["id"]
    assert _IDS.findall(_table(user.get("/templates"))) == [live]
    for other in (test, theirs):
        assert user.get(f"/templates/{other}").status_code == 404
        assert user.get(f"/templates/{other}/delete").status_code == 404
        assert user.submit("/templates", f"/templates/{other}", _form()).status_code == 404
    user.submit("/templates", "/session/mode", {"mode": "test", "next": "/templates"})
    assert _IDS.findall(_table(user.get("/templates"))) == [test]


def test_viewer_reads_only(app, web, client, account, api):
    from app.accounts.service import add_member
    from app.extensions import db
    from tests.helpers import PASSWORD, make_account
    template_id = api.post("/templates", json={"name": "Shared", "html": "<p>x</p>"}).get_json()["id"]
    with app.app_context():
        viewer = make_account()
        add_member(account["organization_id"], viewer["email"], "viewer")
        db.session.commit()
    web.login(viewer["email"], PASSWORD)
    web.submit("/", "/session/organization", {"organization_id": account["organization_id"]})
    page = client.get(f"/templates/{template_id}").get_data(as_text=True)
    assert page.count("Shared") and "Create template" not in page and ">Save<" not in page
    assert "New template" not in client.get("/templates").get_data(as_text=True)
    assert web.submit(f"/templates/{template_id}", data=_form()).status_code == 403
    assert client.get("/templates/new").status_code == 403


def test_next_page(app, user, account):
    from app.extensions import db
    from app.templates.service import create_template
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        ids = [create_template({"name": f"T{i}", "html": "<p>x</p>"}).id for i in range(27)]
        db.session.commit()
    first = user.get("/templates")
    assert _IDS.findall(_table(first)) == list(reversed(ids))[:25]
    older = re.search(r'href="(/templates\?starting_after=tmpl_[A-Za-z0-9]+)"', _table(first)).group(1)
    assert _IDS.findall(_table(user.get(older))) == list(reversed(ids))[25:]


def test_pages_are_csp_clean(user, api):
    template_id = api.post("/templates", json={"name": "Styled", "html": '<p style="color:red">x</p><script>1</script>'}
                           ).get_json()["id"]
    for path in ("/templates", "/templates/new", f"/templates/{template_id}", f"/templates/{template_id}/delete"):
        html = user.get(path).get_data(as_text=True)
        # The template's own markup appears only escaped (in the textarea and the iframe's srcdoc).
        assert "<script>" not in html and ' style="' not in html and "onclick" not in html, path
        forms = [f for f in html.split("<form")[1:] if 'method="post"' in f.split(">")[0]]
        for form in forms:
            assert 'name="csrf_token"' in form.split("</form>")[0], path


def test_saving_unchanged_content_from_the_browser_keeps_the_version(user, api):
    """Browsers send textarea line breaks as CRLF; the stored LF content is not "changed" by that."""
    t = api.post("/templates", json={"name": "Lines", "html": "<p>a</p>\n<p>b</p>", "text": "a\nb"}).get_json()
    resp = user.submit(f"/templates/{t['id']}", data={"name": "Lines", "channel": "email", "is_active": "y",
                                                      "html": "<p>a</p>\r\n<p>b</p>", "text": "a\r\nb"})
    assert resp.status_code == 303
    body = api.get(f"/templates/{t['id']}").get_json()
    assert (body["version"], body["html"], body["text"]) == (1, "<p>a</p>\n<p>b</p>", "a\nb")
