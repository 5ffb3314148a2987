"""The OpenAPI document, the committed openapi.json, the docs UI and the Postman collection (API.md section 1)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from app.config import ROOT

METHODS = ("get", "post", "put", "patch", "delete")
MUTATING = ("post", "put", "patch", "delete")
COMMON_ERRORS = ("400", "401", "403", "404", "409", "429", "500")
PUBLIC_ROUTES = {"/api/v1/openapi.json", "/api/v1/postman.json", "/api/v1/docs"}
ERROR_KEYS = {"type", "code", "message", "param", "status", "doc_url", "request_id"}


@pytest.fixture(scope="module")
def spec(app):
    resp = app.test_client().get("/api/v1/openapi.json")
    assert resp.status_code == 200 and resp.is_json
    return resp.get_json()


@pytest.fixture(scope="module")
def collection(app):
    resp = app.test_client().get("/api/v1/postman.json")
    assert resp.status_code == 200 and resp.is_json
    return resp.get_json()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def deref(spec, obj):
    """Follow a local ``$ref`` chain."""
    while isinstance(obj, dict) and "$ref" in obj:
        target = spec
        for part in obj["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        obj = target
    return obj


# --- the document ---------------------------------------------------------------------------------------

def test_spec_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_every_api_route_is_documented(app, spec):
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in PUBLIC_ROUTES or rule.rule.startswith("/api/v1/docs"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes.update((path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {(path, method) for path, method, _ in _operations(spec)}
    assert routes, "no API routes registered"
    assert routes == documented, {"undocumented": routes - documented, "not routed": documented - routes}


def test_operations_have_ids_summaries_tags_and_scopes(spec):
    ids = [op.get("operationId") for _, _, op in _operations(spec)]
    assert all(ids) and len(ids) == len(set(ids)), ids
    tags = {t["name"] for t in spec["tags"]}
    for path, method, op in _operations(spec):
        assert op.get("summary"), (method, path)
        assert op["tags"] and set(op["tags"]) <= tags, (method, path)
        assert re.fullmatch(r"[a-z_]+\.(read|write|send|run)", op.get("x-required-scope", "")), (method, path)


def test_every_operation_documents_the_contract_errors(spec):
    error_schema = spec["components"]["schemas"]["Error"]
    assert error_schema["required"] == ["error"]
    detail = deref(spec, error_schema["properties"]["error"])
    assert set(detail["properties"]) == ERROR_KEYS and set(detail["required"]) == ERROR_KEYS
    for path, method, op in _operations(spec):
        responses = op["responses"]
        for status in COMMON_ERRORS:
            assert status in responses, (method, path, status)
            response = deref(spec, responses[status])
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            assert "X-Request-Id" in response["headers"], (method, path, status)
        assert deref(spec, responses["default"])["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
        # Validation failures are a 400, never flask-smorest's generic 422.
        if "422" in responses:
            assert responses["422"] != {"$ref": "#/components/responses/UNPROCESSABLE_ENTITY"}, (method, path)
    assert "Retry-After" in spec["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    assert set(spec["components"]["schemas"]) >= {"Error", "ErrorDetail"}
    assert "PaginationMetadata" not in spec["components"]["schemas"]


def test_headers_and_security_are_documented(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"] == {**schemes["apiKeyHeader"], "type": "apiKey", "in": "header",
                                       "name": "X-API-Key"}
    assert spec["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    for path, method, op in _operations(spec):
        params = {(p["in"], p["name"]) for p in (deref(spec, p) for p in op.get("parameters", []))}
        assert ("header", "Version") in params, (method, path)
        assert (("header", "Idempotency-Key") in params) == (method in MUTATING), (method, path)
        successes = [deref(spec, r) for code, r in op["responses"].items() if code.startswith("2")]
        assert successes, (method, path)
        for response in successes:
            assert {"X-Request-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                    "Version"} <= set(response["headers"]), (method, path)
    idem = spec["components"]["parameters"]["IdempotencyKey"]
    assert idem["schema"]["maxLength"] == 255


def test_real_responses_match_the_documented_shapes(spec, api, client):
    """A live 200 list, 201 create, 400, 401 and 404 validate against the document's schemas."""

    def check(resp, path, method, status):
        op = spec["paths"][path][method]
        response = deref(spec, op["responses"][str(status)])
        schema = {**response["content"]["application/json"]["schema"], "components": spec["components"]}
        OAS30Validator(schema).validate(resp.get_json())
        headers = deref(spec, response).get("headers", {})
        for name, header in headers.items():
            assert name in resp.headers or not deref(spec, header).get("required"), (name, status)
        if status < 300:
            for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Version"):
                assert name in headers and name in resp.headers, (name, status)

    resp = api.post("/contacts", json={"email": "ava@example.com", "first_name": "Ava", "tags": ["vip"],
                                       "consent": {"email": True}, "attributes": {"plan": "pro", "seats": 3}})
    assert resp.status_code == 201
    check(resp, "/api/v1/contacts", "post", 201)
    resp = api.get("/contacts")
    check(resp, "/api/v1/contacts", "get", 200)
    assert resp.get_json()["data"]
    resp = api.post("/contacts", json={"emial": "x@example.com"})
    assert resp.status_code == 400
    check(resp, "/api/v1/contacts", "post", 400)
    resp = client.get("/api/v1/contacts")
    assert resp.status_code == 401
    check(resp, "/api/v1/contacts", "get", 401)
    resp = api.get("/contacts/con_doesnotexist")
    assert resp.status_code == 404
    check(resp, "/api/v1/contacts/{contact_id}", "get", 404)


def test_spec_and_docs_need_no_key(client):
    for url in ("/api/v1/openapi.json", "/api/v1/postman.json", "/api/v1/docs"):
        assert client.get(url).status_code == 200, url


# --- the committed openapi.json -------------------------------------------------------------------------

def test_committed_openapi_json_is_current(app, tmp_path):
    """`flask --app wsgi openapi write --format=json openapi.json` must be re-run (and committed) whenever
    the API changes."""
    out = tmp_path / "openapi.json"
    result = app.test_cli_runner().invoke(args=["openapi", "write", "--format=json", str(out)])
    assert result.exit_code == 0, result.output
    fresh = out.read_text()
    committed = (Path(ROOT) / "openapi.json").read_text()
    assert json.loads(fresh) == app.test_client().get("/api/v1/openapi.json").get_json()
    assert fresh == committed, ("openapi.json is stale: run `flask --app wsgi openapi write --format=json "
                                "openapi.json` and commit it")


# --- the docs UI ----------------------------------------------------------------------------------------

def test_docs_page_uses_the_vendored_redoc(client):
    resp = client.get("/api/v1/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '<script src="/static/vendor/redoc.standalone.js"></script>' in html
    assert 'spec-url="/api/v1/openapi.json"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the docs page loads something remote"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp

    bundle = client.get("/static/vendor/redoc.standalone.js")
    assert bundle.status_code == 200 and bundle.mimetype in ("text/javascript", "application/javascript")
    body = bundle.get_data()
    bundle.close()
    assert len(body) > 500_000 and b"cdn.redoc.ly" not in body


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
def test_docs_render_in_chromium_without_leaving_the_host(app):
    """ReDoc renders every tag and operation from local files; nothing is fetched from another host.
    The browser talks to the app through Playwright's router (no server needed)."""
    from playwright.sync_api import sync_playwright

    client = app.test_client()
    spec = client.get("/api/v1/openapi.json").get_json()
    outside, problems = [], []

    def route(route_, request):
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob"):
            return route_.continue_()
        if url.hostname != "postline.test":
            outside.append(request.url)
            return route_.abort()
        resp = client.open(url.path + (f"?{url.query}" if url.query else ""), method=request.method,
                           headers={"Accept": request.headers.get("accept", "*/*")})
        body = resp.get_data()
        resp.close()
        return route_.fulfill(status=resp.status_code, body=body,
                              headers={k: v for k, v in resp.headers.items() if k.lower() != "content-length"})

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page()
            page.route("**/*", route)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto("http://postline.test/api/v1/docs")
            page.wait_for_selector("h1:has-text('Postline API')", timeout=20_000)
            page.wait_for_load_state("networkidle")
            text = page.inner_text("body")
        finally:
            browser.close()

    assert not outside, outside
    assert not problems, problems
    def words(value):
        return " ".join(value.replace("`", "").split())

    for tag in spec["tags"]:
        assert tag["name"] in text
    for _, _, op in _operations(spec):
        assert words(op["summary"]) in words(text), op["summary"]


# --- the Postman collection ------------------------------------------------------------------------------

def test_postman_collection_is_v2_1(collection, app):
    """The structure Postman's v2.1.0 JSON schema asks for, checked field by field."""
    info = collection["info"]
    assert info["name"] == "Postline API"
    assert info["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    assert collection["auth"] == {"type": "bearer",
                                  "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]}
    variables = {v["key"]: v for v in collection["variable"]}
    assert variables["baseUrl"]["value"] == app.config["BASE_URL"].rstrip("/")
    assert variables["apiKey"]["value"].startswith("sk_test_")
    for folder in collection["item"]:
        assert isinstance(folder["name"], str) and folder["item"], folder.get("name")
        assert "request" not in folder  # an item-group holds items, not a request
        for item in folder["item"]:
            request = item["request"]
            assert isinstance(item["name"], str) and item["name"]
            assert request["method"] in {"GET", "POST", "PUT", "PATCH", "DELETE"}
            url = request["url"]
            assert url["host"] == ["{{baseUrl}}"]
            assert url["raw"] == "{{baseUrl}}/" + "/".join(url["path"])
            assert all(isinstance(s, str) and "{" not in s for s in url["path"])
            for entry in url.get("query", []) + request["header"]:
                assert isinstance(entry["key"], str) and isinstance(entry["value"], str)
                assert isinstance(entry.get("disabled", False), bool)
            for var in url.get("variable", []):
                assert isinstance(var["key"], str) and ":" + var["key"] in url["path"]
            if "body" in request:
                body = request["body"]
                assert body["mode"] == "raw" and body["options"] == {"raw": {"language": "json"}}
                assert isinstance(json.loads(body["raw"]), dict)
                assert {"key": "Content-Type", "value": "application/json"} in request["header"]


def test_postman_has_an_item_for_every_operation(spec, collection):
    items = {item["id"]: (folder["name"], item) for folder in collection["item"] for item in folder["item"]}
    for path, method, op in _operations(spec):
        folder, item = items.pop(op["operationId"])
        request = item["request"]
        assert folder == op["tags"][0]
        assert request["method"] == method.upper()
        assert "/".join(request["url"]["path"]) == re.sub(r"\{([^}]+)\}", r":\1", path.strip("/"))
        path_params = re.findall(r"\{([^}]+)\}", path)
        assert [v["key"] for v in request["url"].get("variable", [])] == path_params
        query = {p["name"] for p in (deref(spec, p) for p in op.get("parameters", [])) if p["in"] == "query"}
        assert {q["key"] for q in request["url"].get("query", [])} == query
        headers = {h["key"] for h in request["header"]}
        assert "Version" in headers
        assert ("Idempotency-Key" in headers) == (method in MUTATING)
        assert ("body" in request) == ("application/json" in op.get("requestBody", {}).get("content", {}))
    assert not items, f"items without an operation: {sorted(items)}"


def test_postman_example_bodies_are_accepted(collection, api):
    """The example body of 'create a contact' is a request the API accepts as it stands."""
    item = next(i for f in collection["item"] for i in f["item"] if i["id"] == "postContacts")
    resp = api.post("/contacts", json=json.loads(item["request"]["body"]["raw"]))
    assert resp.status_code in (200, 201), resp.get_json()
