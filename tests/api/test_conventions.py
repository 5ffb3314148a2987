"""API.md section 1: error shape, request ids, HTTPS, versions, bodies, metadata — shared machinery."""
import pytest

from tests.helpers import ApiClient, assert_error


def test_every_response_has_a_request_id(api, client):
    ok = api.get("/contacts")
    assert ok.headers["X-Request-Id"].startswith("req_")
    bad = client.get("/api/v1/contacts")
    err = assert_error(bad, 401, "unauthorized")
    assert err["type"] == "authentication_error"
    assert bad.headers["X-Request-Id"] != ok.headers["X-Request-Id"]


def test_unknown_route_is_json_404(api):
    err = assert_error(api.get("/no-such-thing"), 404, "not_found")
    assert err["type"] == "not_found_error"


def test_wrong_method_is_json_405_with_allow(api):
    resp = api.put("/contacts", json={})
    assert_error(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["Allow"] and "POST" in resp.headers["Allow"]


def test_unexpected_exception_is_json_500_without_trace(api, monkeypatch):
    from app.contacts import service

    def boom(**kwargs):
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(service, "list_contacts_query", boom)
    resp = api.get("/contacts")
    err = assert_error(resp, 500, "internal_error")
    assert err["type"] == "api_error"
    body = resp.get_data(as_text=True)
    assert "Traceback" not in body and "secret internals" not in body


def test_invalid_json_body(api):
    resp = api.client.post("/api/v1/contacts", data="{not json", content_type="application/json",
                           headers={"Authorization": f"Bearer {api.key}"})
    assert_error(resp, 400, "invalid_request")


def test_non_json_content_type_refused(api):
    resp = api.client.post("/api/v1/contacts", data="email=a@example.com",
                           content_type="application/x-www-form-urlencoded",
                           headers={"Authorization": f"Bearer {api.key}"})
    err = assert_error(resp, 415, "invalid_request", "Content-Type")
    assert err["type"] == "validation_error"


def test_body_that_is_not_an_object(api):
    assert_error(api.post("/contacts", json=["a@example.com"]), 400, "invalid_request")


@pytest.mark.parametrize("body,param", [
    ({"email": "a@example.com", "frist_name": "Ava"}, "frist_name"),
    ({"email": 12}, "email"),
    ({"email": "a@example.com", "tags": "vip"}, "tags"),
    ({"email": "a@example.com", "tags": ["x" * 101]}, "tags[0]"),
    ({"email": "a@example.com", "first_name": "x" * 101}, "first_name"),
    ({"email": "a@example.com", "consent": {"email": "maybe"}}, "consent.email"),
    ({"email": "a@example.com", "consent": {"push": "subscribed"}}, "consent.push"),
    ({"email": "a@example.com", "timezone": "Mars/Olympus"}, "timezone"),
    ({"email": "a@example.com", "attributes": {"plan": {"nested": 1}}}, "attributes"),
])
def test_malformed_bodies_name_the_field(api, body, param):
    err = assert_error(api.post("/contacts", json=body), 400, err_code(param), param)
    assert err["type"] == "validation_error"
    assert param.split("[")[0].split(".")[0] in err["message"]


def err_code(param):
    return "invalid_email" if param == "email" else "invalid_request"


def test_invalid_email_and_phone_codes(api):
    assert_error(api.post("/contacts", json={"email": "not-an-email"}), 400, "invalid_email", "email")
    assert_error(api.post("/contacts", json={"phone_number": "555-1234"}), 400, "invalid_phone", "phone_number")


@pytest.mark.parametrize("metadata,fragment", [
    ({f"k{i}": "v" for i in range(51)}, "50"),
    ({"k" * 41: "v"}, "40"),
    ({"plan": 3}, "string"),
    ({"plan": "x" * 501}, "500"),
    ("not-an-object", "object"),
])
def test_metadata_limits(api, metadata, fragment):
    err = assert_error(api.post("/contacts", json={"email": "m@example.com", "metadata": metadata}),
                       400, "invalid_request", "metadata")
    assert fragment in err["message"]


def test_metadata_round_trips_verbatim(api):
    meta = {f"k{i}": "v" * 500 for i in range(50)}
    resp = api.post("/contacts", json={"email": "meta@example.com", "metadata": meta})
    assert resp.status_code == 201
    assert resp.get_json()["metadata"] == meta


@pytest.mark.parametrize("query,param", [
    ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
    ("limit=99999999999999999999999", "limit"),
    ("starting_after=con_doesnotexist", "starting_after"),
    ("ending_before=con_doesnotexist", "ending_before"),
    ("starting_after=a&ending_before=b", "ending_before"),
    ("color=blue", "color"),
])
def test_bad_query_parameters(api, query, param):
    assert_error(api.get(f"/contacts?{query}"), 400, "invalid_request", param)


def test_version_header(api, account):
    resp = api.get("/contacts")
    assert resp.headers["Version"] == "2026-06-01"
    resp = api.get("/contacts", headers={"Version": "2026-06-01"})
    assert resp.status_code == 200 and resp.headers["Version"] == "2026-06-01"
    for bad in ("2020-01-01", "yesterday", "2026-13-45"):
        err = assert_error(api.get("/contacts", headers={"Version": bad}), 400, "invalid_version", "Version")
        assert "2026-06-01" in err["message"]


def test_https_required_when_configured(app, api, monkeypatch):
    monkeypatch.setitem(app.config, "REQUIRE_HTTPS", True)
    err = assert_error(api.get("/contacts"), 403, "https_required")
    assert err["type"] == "permission_error"
    assert api.get("/contacts", headers={"X-Forwarded-Proto": "https"}).status_code == 200


def test_both_auth_headers(client, account):
    via_header = client.get("/api/v1/contacts", headers={"X-API-Key": account["live_api_key"]})
    assert via_header.status_code == 200
    for headers in ({"Authorization": "Bearer sk_live_nope"}, {"X-API-Key": "sk_test_nope"},
                    {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer pk_live_xyz"}):
        assert_error(client.get("/api/v1/contacts", headers=headers), 401, "unauthorized")


def test_request_log_records_api_calls(app, api, account):
    from sqlalchemy import select

    from app.api.models import RequestLog
    from app.extensions import db
    from app.tenancy import tenant_scope

    resp = api.post("/contacts", json={"email": "logme@example.com"}, headers={"Idempotency-Key": "log-1"})
    bad = api.post("/contacts", json={"email": "nope"})
    with app.app_context(), tenant_scope(account["organization_id"]):
        rows = {r.id: r for r in db.session.execute(select(RequestLog)).scalars()}
    row = rows[resp.headers["X-Request-Id"]]
    assert (row.method, row.path, row.status, row.mode) == ("POST", "/api/v1/contacts", 201, "live")
    assert row.key_prefix.startswith("sk_live_") and row.idempotency_key == "log-1"
    assert row.duration_ms >= 0 and "logme@example.com" in row.request_body
    assert rows[bad.headers["X-Request-Id"]].error_code == "invalid_email"


def test_request_log_never_stores_secrets(app, api, account):
    from app.api.models import RequestLog
    from app.extensions import db
    from app.tenancy import tenant_scope

    resp = api.post("/api-keys", json={"name": "ci", "scope": "read"})
    secret = resp.get_json()["secret"]
    with app.app_context(), tenant_scope(account["organization_id"]):
        row = db.session.get(RequestLog, resp.headers["X-Request-Id"])
    assert secret not in row.response_body and "redacted" in row.response_body


def test_test_key_reports_test_mode(test_api):
    assert test_api.get("/contacts").status_code == 200


def test_cross_check_other_tenant_cannot_use_our_key_prefix(client, other_account, account):
    a = ApiClient(client, account["live_api_key"])
    b = ApiClient(client, other_account["live_api_key"])
    assert a.get("/contacts").status_code == b.get("/contacts").status_code == 200


@pytest.mark.parametrize("body,param", [
    ({"email": "a@example.com", "first_name": "A\u0000da"}, "first_name"),
    ({"email": "a@example.com", "tags": ["ok", "b\u0000d"]}, "tags[1]"),
    ({"email": "a@example.com", "attributes": {"plan": "pro\u0000"}}, "attributes.plan"),
])
def test_nul_characters_are_refused_before_the_database(api, body, param):
    """PostgreSQL cannot store U+0000 in text or JSONB: refused with a 400 naming the field, never a 500."""
    assert_error(api.post("/contacts", json=body), 400, "invalid_request", param)


def test_nul_in_a_query_parameter_is_refused(api):
    assert_error(api.get("/contacts?tag=a%00b"), 400, "invalid_request", "tag")


@pytest.mark.parametrize("raw,param", [
    ('{"email": "a@example.com", "first_name": "A\\ud800da"}', "first_name"),
    ('{"email": "a@example.com", "attributes": {"plan": "\\udfffpro"}}', "attributes.plan"),
])
def test_lone_surrogates_are_refused_before_the_database(api, raw, param):
    """JSON may spell a lone UTF-16 surrogate ("\\ud800"), which no database can store: a 400, not a 500."""
    resp = api.post("/contacts", data=raw, headers={"Content-Type": "application/json"})
    body = assert_error(resp, 400, "invalid_request", param)
    assert "surrogate" in body["message"]


def test_a_binary_upload_is_logged_as_what_it_was_not_as_its_bytes(app, api, account):
    """The request log keeps a line about an upload, not its bytes: a PNG full of NULs (which PostgreSQL
    cannot store as text) must neither fail the request nor land in the log."""
    import io

    from sqlalchemy import select

    from app.api.models import RequestLog
    from app.extensions import db
    from app.tenancy import tenant_scope

    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00"
    resp = api.client.post("/api/v1/imports", data={"file": (io.BytesIO(png), "contacts.csv")},
                           content_type="multipart/form-data", headers={"Authorization": f"Bearer {api.key}"})
    assert resp.status_code < 500, resp.get_data(as_text=True)
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        row = db.session.execute(select(RequestLog).where(RequestLog.id == resp.headers["X-Request-Id"])).scalar_one()
    assert row.request_body.startswith("<multipart/form-data, ") and "\x00" not in row.request_body
