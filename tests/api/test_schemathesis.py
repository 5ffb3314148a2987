"""Property-based API tests: schemathesis generates requests from /api/v1/openapi.json and sends them to the
app in-process (WSGI), authenticated with a live admin key.

It runs schemathesis's own engine (what ``schemathesis run`` does: the examples, coverage and fuzzing phases,
positive and negative data) with the built-in checks: no 5xx, status codes, content types, headers and
bodies conform to the document, valid data is accepted and invalid data refused, undocumented methods get a
405 with ``Allow``.  On top of those, ``contract_error_shape`` requires every 4xx to be the contract's JSON
error, and ``test_every_operation_requires_a_key`` stands in for the ``ignored_auth`` check.

Bounded and deterministic: a fixed seed, deterministic generation, a few examples per operation and phase,
no example database and no cache.  (Schemathesis's pytest plugin is not used: 4.32 reads a ``Node`` attribute
pytest 9 no longer has.)
"""
from __future__ import annotations

import json
import re
from collections import Counter
from itertools import count

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from sqlalchemy import select, update

from tests.dns_server import dns_server, local_dns  # noqa: F401  (domain verification stays on loopback)
from tests.helpers import make_account

MAX_EXAMPLES = 25
ERROR_KEYS = {"type", "code", "message", "param", "status", "doc_url", "request_id"}

# Schema-valid requests the server may still refuse with a 400, and why the document cannot say so.
# `positive_data_acceptance` reports any other refusal of generated valid data: fix the document (or the
# server), or, for a rule OpenAPI 3.0 cannot express, add it here.  Keyed on (code, param, message).
ACCEPTED_REJECTIONS = [
    ("invalid_phone", r".*", r".*"),                        # a real numbering plan is beyond a pattern
    ("invalid_email", r".*", r".*"),                        # email-validator's rules beyond `format: email`
    ("invalid_request", r"^(starting_after|ending_before)$", r".*"),  # cursor must exist; not both
    ("invalid_request", r"^timezone$", r"IANA"),            # zone names come from the system's tzdata
    ("invalid_request", r"^(metadata|attributes)$", r"keys must be"),  # key length: no propertyNames in 3.0
    ("invalid_request", r"^email$", r"needs an email or a phone_number"),  # one of two fields
    ("invalid_request", r"^scopes$", r"'scopes' or a 'scope' preset"),  # one of two fields
    ("invalid_request", r"^(html|text)$", r"template needs"),  # email needs html or text: one of two fields
    ("invalid_template", r"^(subject|html|text|template_id)$", r".*"),  # mustache syntax is not a pattern
    ("invalid_request", r"^variables\[\d+\]\.name$", r"declared twice"),  # uniqueness by a key
    ("missing_variable", r"^variables\.", r".*"),  # depends on the stored template
    ("invalid_request", r"^(html|subject|template_id)$", r"(give|template|combined)"),  # html/text or template_id
    ("payload_too_large", r"^attachments$", r".*"),  # the 10 MiB total is across items
    ("invalid_request", r"^attachments\[\d+\]\.content$", r"base64"),  # base64 is not a 3.0 format
    ("invalid_request", r"^send_at$", r"30 days"),  # relative to now
    ("invalid_request", r"^headers$", r"(header name|set by Postline)"),  # reserved names
    ("invalid_url", r"^url$", r".*"),  # the host must resolve to a public address: DNS, not a pattern
    ("unsupported_channel", r"^channel$", r".*"),  # documented channels not served yet (SMS, push …)
    ("invalid_request", r"^items$", r"either `items`"),  # batch: one of two forms
    ("invalid_request", r"^(destination|payload\..*|from)$", r".*"),  # per-channel payloads: checked as email
    ("invalid_segment_rules", r"^segment_rules", r".*"),  # the rule language is checked by the server
    ("invalid_request", r"^segment_rules$", r".*"),  # required for dynamic lists, refused for static ones
    ("invalid_request", r"^contact_id$", r"either contact_id or contact_ids"),  # one of two fields
    ("invalid_request", r"^(recipients|audience_list_id)$", r"(audience_list_id or recipients|Send a proof)"),
    ("invalid_request", r"^(html|body_html|template_id|subject|from)$", r"(give|required)"),  # content: one of
    ("invalid_request", r"^scheduled_at$", r"(past|a year ahead|out of range)"),  # relative to now
    ("invalid_request", r"^recipients(\[\d+\].*)?$", r"email address for every recipient"),
]


@schemathesis.check
def contract_error_shape(ctx, response, case):
    """Every 4xx is ``{"error": {type, code, message, param, status, doc_url, request_id}}``."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"4xx answered with {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error envelope: {body!r}"
    error = body["error"]
    assert set(error) == ERROR_KEYS, f"error keys {sorted(error)}"
    assert error["status"] == response.status_code, f"error.status {error['status']} != {response.status_code}"
    assert isinstance(error["code"], str) and error["code"], "empty error.code"
    assert error["doc_url"].endswith("#" + error["code"]), error["doc_url"]
    # A replayed answer (Idempotent-Replayed) names the request that produced it in `Original-Request`.
    expected = (response.headers.get("original-request") or response.headers["x-request-id"])[0]
    assert error["request_id"] == expected, "error.request_id != X-Request-Id (or Original-Request)"
    return None


@pytest.fixture
def live_key(app):
    """``(secret, id)`` of a live admin key on an enterprise organization with a limit no fuzzer reaches."""
    from app.accounts.models import Organization
    from app.api.auth import hash_secret
    from app.apikeys.models import ApiKey
    from app.extensions import db
    from app.tenancy import unscoped

    with app.app_context():
        account = make_account(plan="enterprise")
        db.session.execute(update(Organization).where(Organization.id == account["organization_id"])
                           .values(rate_limit_per_second=100_000, rate_limit_burst=100_000))
        db.session.commit()
        with unscoped():
            key_id = db.session.execute(select(ApiKey.id).where(
                ApiKey.key_hash == hash_secret(account["live_api_key"]))).scalar_one()
    return account["live_api_key"], key_id


def _map_case(own_key_id, drafts=()):
    """Keep the run meaningful: never revoke, rotate or disable the key the run authenticates with (the
    fuzzer learns ids from GET /api-keys), and give every valid Idempotency-Key a fresh value (generated
    keys repeat, and a reused key answers 409 before the request is even read)."""
    fresh = count()
    completions = count()  # its own counter: the shared one moves with whatever else the run happens to do

    spare_drafts = list(drafts)

    def map_case(context, case):
        if (case.path_parameters or {}).get("key_id") == own_key_id:
            case.path_parameters["key_id"] = "key_" + "0" * 20
        # The fuzzer sends, schedules and cancels the broadcasts it finds long before it deletes one, and only
        # a draft can be deleted: now and then, a DELETE of a real broadcast id gets a draft nobody touched.
        params = case.path_parameters or {}
        if (case.method.upper() == "DELETE" and str(params.get("broadcast_id", "")).startswith("bc_")
                and spare_drafts and next(fresh) % 3 == 0):
            params["broadcast_id"] = spare_drafts.pop()
        # A live send or broadcast needs a verified sender, and the fuzzer cannot guess the seeded domain:
        # half of the generated senders become an address on it.
        if (case.method.upper() == "POST" and case.path.endswith(("/broadcasts", "/messages", "/messages/email"))
                and isinstance(case.body, dict) and next(fresh) % 2 == 0):
            for holder in (case.body, case.body.get("payload")):
                if isinstance(holder, dict) and isinstance(holder.get("from"), str):
                    holder["from"] = "news@fuzz.example.com"
        # The channel-generic form's `payload` is a free-form object (its fields depend on the channel), so
        # random payloads almost never make a whole email: now and then, complete one.
        if (case.method.upper() == "POST" and case.path.endswith("/messages") and isinstance(case.body, dict)
                and case.body.get("channel") == "email" and next(completions) % 3 == 0):
            case.body["destination"] = "fuzz@example.com"
            case.body["idempotency_key"] = f"schemathesis-body-{next(fresh)}"  # generated ones repeat: 409
            case.body.pop("template_id", None)
            case.body.pop("template_vars", None)
            case.body.pop("send_at", None)
            payload = case.body.get("payload") if isinstance(case.body.get("payload"), dict) else {}
            case.body["payload"] = {**{k: v for k, v in payload.items() if k in ("text",) and isinstance(v, str)},
                                    "from": "news@fuzz.example.com", "subject": "Fuzz", "html": "<p>Fuzz</p>"}
        headers = case.headers or {}
        for name in list(headers):
            value = headers[name]
            if name.lower() == "idempotency-key" and isinstance(value, str) and 0 < len(value.strip()) <= 255:
                headers[name] = f"schemathesis-{next(fresh)}"
        return case

    return map_case


def _accepted_rejection(context, failure, case, response) -> bool:
    """filter_failure hook: drop positive_data_acceptance reports listed in ACCEPTED_REJECTIONS."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 400:
        return True
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return True
    for code, param, message in ACCEPTED_REJECTIONS:
        if (error.get("code") == code and re.search(param, error.get("param") or "")
                and re.search(message, error.get("message") or "")):
            return False
    return True


def _describe(recorder, case_id, check) -> str:
    info = check.failure_info
    failure = info.failure if info is not None else None
    case = recorder.cases.get(case_id)
    interaction = recorder.interactions.get(case_id)
    lines = [f"[{recorder.label}] {check.name}: {getattr(failure, 'title', '')}",
             f"    {getattr(failure, 'message', '')}".rstrip()]
    if info is not None and getattr(info, "code", None):
        lines.append(f"    reproduce: {info.code}")
    elif case is not None:
        lines.append(f"    case: {case.value.method} {case.value.formatted_path} body={case.value.body!r:.300}")
    if interaction is not None and interaction.response is not None:
        lines.append(f"    -> {interaction.response.status_code} {interaction.response.content[:300]!r}")
    return "\n".join(lines)


def _seed_audience(app, client, secret):
    """A verified sending domain (live broadcasts need one), a contact in a static list, a draft broadcast
    and a finished export job, so every by-id operation of those resources can succeed."""
    from app.domains.models import Domain
    from app.extensions import db
    from app.tenancy import unscoped

    auth = {"Authorization": f"Bearer {secret}"}
    dom = client.post("/api/v1/domains", json={"domain": "fuzz.example.com"}, headers=auth)
    assert dom.status_code == 201, dom.get_json()
    with app.app_context(), unscoped():
        db.session.execute(update(Domain).where(Domain.id == dom.get_json()["id"]).values(status="verified"))
        db.session.commit()
    contact = client.post("/api/v1/contacts", json={"email": "fuzz@example.com", "consent": {"email": True}},
                          headers=auth)
    assert contact.status_code == 201, contact.get_json()
    lst = client.post("/api/v1/lists", json={"name": "Fuzz", "list_type": "static"}, headers=auth)
    assert lst.status_code == 201, lst.get_json()
    added = client.post(f"/api/v1/lists/{lst.get_json()['id']}/members",
                        json={"contact_id": contact.get_json()["id"]}, headers=auth)
    assert added.status_code in (200, 201), added.get_json()
    draft = client.post("/api/v1/broadcasts", json={
        "name": "Fuzz", "from": "news@fuzz.example.com", "subject": "Hi", "html": "<p>Hi</p>",
        "audience_list_id": lst.get_json()["id"]}, headers=auth)
    assert draft.status_code == 201, draft.get_json()
    spare = []
    for i in range(10):
        more = client.post("/api/v1/broadcasts", json={
            "name": f"Spare {i}", "from": "news@fuzz.example.com", "subject": "Hi", "html": "<p>Hi</p>",
            "audience_list_id": lst.get_json()["id"]}, headers=auth)
        assert more.status_code == 201, more.get_json()
        spare.append(more.get_json()["id"])
    export = client.get("/api/v1/contacts/export", headers=auth)
    assert export.status_code == 202, export.get_json()
    from app.imports.tasks import export_contacts
    with app.app_context():
        export_contacts(export.get_json()["id"], tenant=(_org_of(app, secret), "live"))
    return spare


def _org_of(app, secret):
    from app.api.auth import hash_secret
    from app.apikeys.models import ApiKey
    from app.extensions import db
    from app.tenancy import unscoped
    with app.app_context(), unscoped():
        return db.session.execute(select(ApiKey.organization_id).where(
            ApiKey.key_hash == hash_secret(secret))).scalar_one()


def test_api_conforms_to_its_openapi_document(app, client, live_key, local_dns):
    secret, key_id = live_key
    # Objects the fuzzer finds through the list endpoints, so every by-id operation can succeed too.
    local_dns.add("hooks.example.com", "A", "127.0.0.1")  # ALLOW_PRIVATE_URLS is on in tests
    seed = client.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/postline"},
                       headers={"Authorization": f"Bearer {secret}"})
    assert seed.status_code == 201, seed.get_json()
    seed = client.post("/api/v1/templates", json={"name": "Welcome", "subject": "Hi {{name}}",
                                                  "html": "<p>Hi {{name}}</p>"},
                       headers={"Authorization": f"Bearer {secret}"})
    assert seed.status_code == 201, seed.get_json()
    drafts = _seed_audience(app, client, secret)
    config = SchemathesisConfig.from_dict({
        "seed": 20260601,
        "cache": {"enabled": False},
        "max-failures": 50,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none", "no-shrink": True,
                           # U+0000 is refused by every endpoint (the document says so; PostgreSQL can't
                           # store it): test_conventions covers that 400.
                           "allow-x00": False},
        "phases": {"stateful": {"enabled": False}},
        "auth": {"openapi": {"bearerAuth": {"bearer": secret}}},
        "checks": {
            # 422 is the contract's answer to a well-formed request the current state refuses.
            "positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 422, 429]},
            # schemathesis 4.32 sends its unauthenticated probe through the WSGI transport with a
            # `max_redirects` argument werkzeug does not take; test_every_operation_requires_a_key covers it.
            "ignored_auth": {"enabled": False},
        },
    })
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    schema.hook("filter_failure")(_accepted_rejection)
    schema.hook("map_case")(_map_case(key_id, drafts))

    failures, errors = [], []
    statuses: dict[str, Counter] = {}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    statuses.setdefault(recorder.label, Counter())[interaction.response.status_code] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        failures.append(_describe(recorder, case_id, check))
            if event.status == Status.ERROR:
                errors.append(f"[{recorder.label}] scenario errored in phase {event.phase}")
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(f"{type(event).__name__}: {getattr(event, 'info', event)}")

    for label, counter in sorted(statuses.items()):
        print(f"{label}: {sum(counter.values())} requests, {dict(sorted(counter.items()))}")
    unique = list(dict.fromkeys(failures))
    assert not errors and not unique, "\n".join(errors + unique[:40])
    documented = {f"{method.upper()} {path}" for path, item in schema.raw_schema["paths"].items()
                  for method in item if method in {"get", "post", "put", "patch", "delete"}}
    assert set(statuses) == documented, documented ^ set(statuses)
    # Each operation was really exercised, and not only refused: some requests succeeded.
    for label, counter in statuses.items():
        assert sum(counter.values()) >= MAX_EXAMPLES, (label, counter)
        assert any(200 <= status < 300 for status in counter), (label, counter)


def test_every_operation_requires_a_key(app, client):
    """What schemathesis's `ignored_auth` check would do: each documented operation refuses no key and a
    bad key with the contract's 401."""
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["security"]
    for path, item in spec["paths"].items():
        examples = {p["name"]: (p.get("schema") or {}).get("example", "x_123")
                    for p in item.get("parameters", []) if p.get("in") == "path"}
        url = re.sub(r"\{([^}]+)\}", lambda m: examples.get(m.group(1), "x_123"), path)
        for method in ("get", "post", "put", "patch", "delete"):
            if method not in item:
                continue
            assert item[method].get("security", spec["security"]), (method, path)
            for headers in ({}, {"Authorization": "Bearer sk_live_not_a_real_key_000000000000"},
                            {"X-API-Key": "sk_test_not_a_real_key_0000000000000"}):
                resp = client.open(url, method=method.upper(), json={}, headers=headers)
                assert resp.status_code == 401, (method, path, headers, resp.status_code)
                error = resp.get_json()["error"]
                assert (error["type"], error["code"]) == ("authentication_error", "unauthorized")
                assert error["request_id"] == resp.headers["X-Request-Id"]
