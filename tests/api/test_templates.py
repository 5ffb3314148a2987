"""Templates (API.md 5): CRUD, versions, variables, render, and the service the send pipeline calls."""
from __future__ import annotations

import pytest

from tests.helpers import ApiClient, assert_error

WELCOME = {"name": "Welcome", "subject": "Welcome, {{first_name}}!",
           "html": "<p>Hi {{first_name}}, your code is <b>{{code}}</b>. {{greeting}}</p>"
                   "<a href=\"{{unsubscribe_url}}\">unsubscribe</a>",
           "text": "Hi {{first_name}}, code {{code}}",
           "variables": [{"name": "code", "sample": "A1", "required": True},
                         {"name": "greeting", "default": "See you soon."}],
           "metadata": {"team": "growth"}}


def _create(api, **overrides):
    resp = api.post("/templates", json={**WELCOME, **overrides})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_create_and_read(api):
    t = _create(api)
    assert t["id"].startswith("tmpl_") and t["object"] == "template"
    assert (t["channel"], t["is_active"], t["version"], t["body_json"]) == ("email", True, 1, None)
    assert t["variables"] == [{"name": "code", "sample": "A1", "default": None, "required": True},
                              {"name": "greeting", "sample": None, "default": "See you soon.", "required": False}]
    assert t["metadata"] == {"team": "growth"} and t["created_at"].endswith("Z")
    assert set(t) == {"id", "object", "name", "channel", "subject", "html", "text", "body_json", "variables",
                      "is_active", "version", "metadata", "created_at", "updated_at"}
    assert api.get(f"/templates/{t['id']}").get_json() == t


def test_sms_template(api):
    t = _create(api, name="OTP", channel="sms", subject=None, html=None, text="Code {{code}}",
                body_json={"blocks": [{"type": "text"}]})
    assert t["channel"] == "sms" and t["body_json"] == {"blocks": [{"type": "text"}]}
    out = api.post(f"/templates/{t['id']}/render", json={"variables": {"code": "991"}}).get_json()
    assert (out["subject"], out["html"], out["text"]) == (None, None, "Code 991")


@pytest.mark.parametrize("body,code,param", [
    ({"html": "<p>x</p>"}, "invalid_request", "name"),
    ({"name": "x", "html": "<p>x</p>", "nope": 1}, "invalid_request", "nope"),
    ({"name": "x", "channel": "push", "html": "x"}, "invalid_request", "channel"),
    ({"name": "x", "subject": "only a subject"}, "invalid_request", "html"),
    ({"name": "x", "channel": "sms", "html": "<p>no text</p>"}, "invalid_request", "text"),
    ({"name": "x", "html": "{{#a}}unclosed"}, "invalid_template", "html"),
    ({"name": "x", "html": "<p>ok</p>", "subject": "{{/b}}"}, "invalid_template", "subject"),
    ({"name": "x", "html": "<p>ok</p>", "text": "{{> /etc/passwd}}"}, "invalid_template", "text"),
    ({"name": "x", "html": "<p>ok</p>", "subject": "a\r\nBcc: x@example.com"}, "invalid_template", "subject"),
    ({"name": "x", "html": 5}, "invalid_request", "html"),
    ({"name": "x", "html": "x", "is_active": "yes"}, "invalid_request", "is_active"),
    ({"name": "x", "html": "x", "body_json": [1]}, "invalid_request", "body_json"),
    ({"name": "x", "html": "x", "variables": {"code": 1}}, "invalid_request", "variables"),
    ({"name": "x", "html": "x", "variables": [{"sample": 1}]}, "invalid_request", "variables[0].name"),
    ({"name": "x", "html": "x", "variables": [{"name": "1bad"}]}, "invalid_request", "variables[0].name"),
    ({"name": "x", "html": "x", "variables": [{"name": "a", "extra": 1}]}, "invalid_request", "variables[0].extra"),
    ({"name": "x", "html": "x", "variables": [{"name": "a"}, {"name": "a"}]}, "invalid_request", "variables[1].name"),
    ({"name": "x", "html": "x", "variables": [{"name": "unsubscribe_url"}]}, "invalid_request", "variables[0].name"),
    ({"name": "x", "html": "x", "variables": [{"name": "a", "required": "true"}]}, "invalid_request",
     "variables[0].required"),
    ({"name": "x", "html": "x", "metadata": {"k": 1}}, "invalid_request", "metadata"),
    ({"name": "", "html": "x"}, "invalid_request", "name"),
    ({"name": "x", "html": "x" * (512 * 1024 + 1)}, "invalid_request", "html"),
])
def test_bad_input_is_400_with_param(api, body, code, param):
    err = assert_error(api.post("/templates", json=body), 400, code, param)
    assert err["type"] == "validation_error"


def test_update_bumps_version_only_for_content(api):
    t = _create(api)
    same = api.put(f"/templates/{t['id']}", json={"name": "Renamed", "is_active": False, "metadata": {"a": "b"}})
    assert same.status_code == 200
    body = same.get_json()
    assert (body["name"], body["is_active"], body["metadata"], body["version"]) == ("Renamed", False, {"a": "b"}, 1)
    assert api.put(f"/templates/{t['id']}", json={"html": t["html"]}).get_json()["version"] == 1  # identical
    v2 = api.put(f"/templates/{t['id']}", json={"html": "<p>{{code}}</p>"}).get_json()
    assert v2["version"] == 2 and v2["html"] == "<p>{{code}}</p>" and v2["subject"] == t["subject"]
    v3 = api.put(f"/templates/{t['id']}", json={"variables": [{"name": "code", "default": "D"}]}).get_json()
    assert v3["version"] == 3 and v3["variables"] == [{"name": "code", "sample": None, "default": "D",
                                                       "required": False}]
    v4 = api.put(f"/templates/{t['id']}", json={**WELCOME, "body_json": {"doc": 1}}).get_json()  # full PUT
    assert v4["version"] == 4 and v4["name"] == "Welcome" and v4["body_json"] == {"doc": 1}
    assert api.get(f"/templates/{t['id']}").get_json()["version"] == 4

    versions = api.get(f"/templates/{t['id']}/versions").get_json()
    assert versions["object"] == "list" and versions["url"] == f"/api/v1/templates/{t['id']}/versions"
    assert [v["version"] for v in versions["data"]] == [4, 3, 2, 1]
    assert versions["data"][3]["html"] == t["html"] and versions["data"][2]["html"] == "<p>{{code}}</p>"
    assert versions["data"][0]["object"] == "template_version" and versions["data"][0]["template_id"] == t["id"]


def test_update_refuses_bad_content_and_keeps_the_version(api):
    t = _create(api)
    assert_error(api.put(f"/templates/{t['id']}", json={"html": "{{#x}}"}), 400, "invalid_template", "html")
    assert_error(api.put(f"/templates/{t['id']}", json={"html": None, "text": None}), 400, "invalid_request", "html")
    assert_error(api.put(f"/templates/{t['id']}", json={"channel": "sms", "text": None}), 400, "invalid_request",
                 "text")
    assert_error(api.put(f"/templates/{t['id']}", json={"version": 9}), 400, "invalid_request", "version")
    assert api.get(f"/templates/{t['id']}").get_json()["version"] == 1
    assert_error(api.put("/templates/tmpl_missing", json={"name": "x"}), 404, "not_found")


def test_versions_pagination(fast_api):
    t = _create(fast_api)
    for i in range(6):
        fast_api.put(f"/templates/{t['id']}", json={"text": f"v{i + 2}"})
    page1 = fast_api.get(f"/templates/{t['id']}/versions?limit=3").get_json()
    assert [v["version"] for v in page1["data"]] == [7, 6, 5] and page1["has_more"] is True
    page2 = fast_api.get(f"/templates/{t['id']}/versions?limit=3&starting_after={page1['data'][-1]['id']}").get_json()
    assert [v["version"] for v in page2["data"]] == [4, 3, 2] and page2["has_more"] is True
    page3 = fast_api.get(f"/templates/{t['id']}/versions?limit=3&starting_after={page2['data'][-1]['id']}").get_json()
    assert [v["version"] for v in page3["data"]] == [1] and page3["has_more"] is False
    back = fast_api.get(f"/templates/{t['id']}/versions?limit=3&ending_before={page3['data'][0]['id']}").get_json()
    assert [v["version"] for v in back["data"]] == [4, 3, 2] and back["has_more"] is True
    assert_error(fast_api.get(f"/templates/{t['id']}/versions?starting_after=tmplv_nope"), 400, "invalid_request",
                 "starting_after")
    assert_error(fast_api.get(f"/templates/{t['id']}/versions?limit=0"), 400, "invalid_request", "limit")
    assert_error(fast_api.get("/templates/tmpl_missing/versions"), 404, "not_found")


def test_list_filters_and_pagination(fast_api):
    api = fast_api
    a = _create(api, name="A")["id"]
    b = _create(api, name="B", channel="sms", text="x", html=None)["id"]
    c = _create(api, name="C", is_active=False)["id"]
    ids = [t["id"] for t in api.get("/templates").get_json()["data"]]
    assert ids == [c, b, a]
    assert [t["id"] for t in api.get("/templates?channel=sms").get_json()["data"]] == [b]
    assert [t["id"] for t in api.get("/templates?is_active=false").get_json()["data"]] == [c]
    assert [t["id"] for t in api.get("/templates?is_active=true&channel=email").get_json()["data"]] == [a]
    page = api.get("/templates?limit=2").get_json()
    assert page["has_more"] is True and [t["id"] for t in page["data"]] == [c, b]
    rest = api.get(f"/templates?limit=2&starting_after={b}").get_json()
    assert [t["id"] for t in rest["data"]] == [a] and rest["has_more"] is False
    assert_error(api.get("/templates?channel=fax"), 400, "invalid_request", "channel")
    assert_error(api.get("/templates?colour=red"), 400, "invalid_request", "colour")


def test_delete(api):
    t = _create(api)
    api.put(f"/templates/{t['id']}", json={"text": "v2"})
    resp = api.delete(f"/templates/{t['id']}")
    assert resp.status_code == 200
    assert resp.get_json() == {"id": t["id"], "object": "template", "deleted": True}
    assert_error(api.get(f"/templates/{t['id']}"), 404, "not_found")
    assert_error(api.get(f"/templates/{t['id']}/versions"), 404, "not_found")
    assert_error(api.delete(f"/templates/{t['id']}"), 404, "not_found")


def test_render(api):
    t = _create(api)
    out = api.post(f"/templates/{t['id']}/render", json={"variables": {"first_name": "<Ada>", "code": "X&Y"}})
    assert out.status_code == 200
    body = out.get_json()
    assert body["subject"] == "Welcome, <Ada>!"
    assert body["html"].startswith("<p>Hi &lt;Ada&gt;, your code is <b>X&amp;Y</b>. See you soon.</p>")
    assert body["text"] == "Hi <Ada>, code X&Y"
    assert (body["template_id"], body["version"]) == (t["id"], 1)
    # Samples are for previews: a required variable with no value is missing, whatever its sample.
    err = assert_error(api.post(f"/templates/{t['id']}/render", json={"variables": {}}), 400, "missing_variable",
                       "variables.code")
    assert "code" in err["message"]
    assert_error(api.post(f"/templates/{t['id']}/render", json={}), 400, "missing_variable", "variables.code")
    assert_error(api.post(f"/templates/{t['id']}/render", json={"variables": {"code": None}}), 400,
                 "missing_variable", "variables.code")


def test_render_versions_contacts_and_bad_input(api):
    t = _create(api)
    api.put(f"/templates/{t['id']}", json={"subject": "v2 {{contact.email}}", "variables": []})
    contact = api.post("/contacts", json={"email": "ada@example.com", "first_name": "Ada"}).get_json()
    cur = api.post(f"/templates/{t['id']}/render", json={"contact_id": contact["id"]}).get_json()
    assert (cur["version"], cur["subject"]) == (2, "v2 ada@example.com")
    assert cur["text"] == "Hi Ada, code "
    old = api.post(f"/templates/{t['id']}/render", json={"version": 1, "variables": {"code": "1"},
                                                         "contact_id": contact["id"]}).get_json()
    assert (old["version"], old["subject"]) == (1, "Welcome, Ada!")
    assert_error(api.post(f"/templates/{t['id']}/render", json={"version": 1}), 400, "missing_variable",
                 "variables.code")  # version 1 declared `code` as required
    assert_error(api.post(f"/templates/{t['id']}/render", json={"version": 7}), 404, "not_found", "version")
    assert_error(api.post(f"/templates/{t['id']}/render", json={"version": 0}), 400, "invalid_request", "version")
    assert_error(api.post(f"/templates/{t['id']}/render", json={"contact_id": "con_missing"}), 404, "not_found",
                 "contact_id")
    assert_error(api.post(f"/templates/{t['id']}/render", json={"variables": []}), 400, "invalid_request",
                 "variables")
    assert_error(api.post(f"/templates/{t['id']}/render", json={"vars": {}}), 400, "invalid_request", "vars")
    assert_error(api.post(f"/templates/{t['id']}/render",
                          json={"version": 1, "variables": {"code": "1", "first_name": "x\r\nBcc: a@example.com"}}),
                 400, "invalid_template", "subject")
    assert_error(api.post("/templates/tmpl_missing/render", json={}), 404, "not_found")


def test_inactive_templates_still_render_in_the_api(api):
    t = _create(api, is_active=False)
    assert api.post(f"/templates/{t['id']}/render", json={"variables": {"code": "1"}}).status_code == 200


def test_send_key_can_read_and_render_but_not_write(app, client, api):
    t = _create(api)
    secret = api.post("/api-keys", json={"name": "sender", "scope": "send"}).get_json()["secret"]
    sender = ApiClient(client, secret)
    assert sender.get(f"/templates/{t['id']}").status_code == 200
    assert sender.post(f"/templates/{t['id']}/render", json={"variables": {"code": "1"}}).status_code == 200
    assert_error(sender.post("/templates", json=WELCOME), 403, "forbidden")
    assert_error(sender.put(f"/templates/{t['id']}", json={"name": "x"}), 403, "forbidden")
    assert_error(sender.delete(f"/templates/{t['id']}"), 403, "forbidden")


def test_idempotent_create(api):
    headers = {"Idempotency-Key": "tmpl-create-1"}
    first = api.post("/templates", json=WELCOME, headers=headers)
    again = api.post("/templates", json=WELCOME, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json()["id"] == first.get_json()["id"]
    assert len(api.get("/templates").get_json()["data"]) == 1


# -- isolation ------------------------------------------------------------------------------------------------

@pytest.fixture
def theirs(other_api):
    return other_api.post("/templates", json=WELCOME).get_json()["id"]


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/templates/{id}", None),
    ("PUT", "/templates/{id}", {"name": "x"}),
    ("DELETE", "/templates/{id}", None),
    ("GET", "/templates/{id}/versions", None),
    ("POST", "/templates/{id}/render", {"variables": {"code": "1"}}),
])
def test_other_organizations_templates_are_404(api, other_api, theirs, method, path, body):
    assert_error(api.request(method, path.format(id=theirs), json=body), 404, "not_found")
    assert other_api.get(f"/templates/{theirs}").get_json()["name"] == "Welcome"


def test_lists_and_cursors_never_cross_tenants(api, theirs):
    assert api.get("/templates").get_json()["data"] == []
    assert_error(api.get(f"/templates?starting_after={theirs}"), 400, "invalid_request", "starting_after")


def test_test_and_live_modes_are_separate(api, test_api):
    live = _create(api)["id"]
    test = _create(test_api)["id"]
    assert [t["id"] for t in api.get("/templates").get_json()["data"]] == [live]
    assert [t["id"] for t in test_api.get("/templates").get_json()["data"]] == [test]
    for method, path, body in [("GET", "/templates/{}", None), ("PUT", "/templates/{}", {"name": "x"}),
                               ("GET", "/templates/{}/versions", None),
                               ("POST", "/templates/{}/render", {"variables": {"code": "1"}}),
                               ("DELETE", "/templates/{}", None)]:
        assert_error(test_api.request(method, path.format(live), json=body), 404, "not_found")
        assert_error(api.request(method, path.format(test), json=body), 404, "not_found")


# -- the service the send pipeline calls ---------------------------------------------------------------------

@pytest.fixture
def scope(app, account):
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        yield
        from app.extensions import db
        db.session.rollback()


def test_render_for_send(api, scope):
    from app.errors import NotFound, ValidationError
    from app.templates import service
    t = _create(api)
    api.put(f"/templates/{t['id']}", json={"text": "v2 {{first_name}} {{code}}"})
    contact = {"email": "ada@example.com", "first_name": "Ada", "last_name": "L", "attributes": {"plan": "pro"}}
    out = service.render_for_send(t["id"], {"code": "C<1>"}, contact=contact, unsubscribe_url="https://x.test/u/t")
    assert set(out) == {"subject", "html", "text", "template_id", "version"}
    assert (out["template_id"], out["version"], out["subject"], out["text"]) == (t["id"], 2, "Welcome, Ada!",
                                                                                "v2 Ada C<1>")
    assert "<b>C&lt;1&gt;</b>" in out["html"] and 'href="https://x.test/u/t"' in out["html"]
    pinned = service.render_for_send(t["id"], {"code": "1"}, version=1, contact=contact)
    assert (pinned["version"], pinned["text"]) == (1, "Hi Ada, code 1")

    def raises(exc_type, code, param, *args, **kwargs):
        with pytest.raises(exc_type) as exc:
            service.render_for_send(*args, **kwargs)
        assert (exc.value.code, exc.value.param) == (code, param)

    raises(ValidationError, "missing_variable", "variables.code", t["id"], {})
    raises(NotFound, "not_found", "template_version", t["id"], {"code": "1"}, version=9)
    raises(NotFound, "not_found", "template_id", "tmpl_missing", {})
    raises(ValidationError, "invalid_template", "template_id", t["id"], {"code": "1"}, channel="sms")
    service.update_template(t["id"], {"is_active": False})
    raises(ValidationError, "invalid_template", "template_id", t["id"], {"code": "1"})

    sms = _create(api, name="OTP", channel="sms", html=None, subject=None, text="{{code}} for {{first_name}}")
    out = service.render_for_send(sms["id"], {"code": "42"}, contact={"first_name": "Ada"}, channel="sms")
    assert out == {"subject": None, "html": None, "text": "42 for Ada", "template_id": sms["id"], "version": 1}
    assert service.get_template(sms["id"]).id == sms["id"]
    raises(NotFound, "not_found", "template_id", "tmpl_nope", {}, channel="sms")


def test_render_for_send_never_crosses_tenants(api, other_api, scope):
    from app.errors import NotFound
    from app.templates import service
    theirs = other_api.post("/templates", json=WELCOME).get_json()["id"]
    with pytest.raises(NotFound):
        service.render_for_send(theirs, {"code": "1"})
    with pytest.raises(NotFound):
        service.get_template(theirs)


def test_render_content(scope):
    from app.errors import ValidationError
    from app.templates import service
    ctx = service.build_context({"x": "<1>"}, contact={"first_name": "Ada"}, unsubscribe_url="https://u.test/1")
    out = service.render_content("S {{first_name}}", "<i>{{x}}</i> {{unsubscribe_url}}", "{{x}}", ctx)
    assert out == {"subject": "S Ada", "html": "<i>&lt;1&gt;</i> https://u.test/1", "text": "<1>"}
    assert service.render_content(None, None, "{{a}}", {"a": 1}) == {"subject": None, "html": None, "text": "1"}
    with pytest.raises(ValidationError) as exc:
        service.render_content(None, "{{#a}}", None, {})
    assert (exc.value.code, exc.value.param) == ("invalid_template", "html")
