"""Webhooks API: endpoints (secret shown once, rotate, pause), signed deliveries verified by the
`standardwebhooks` library on a real HTTP receiver, retries, 410, the delivery log, SSRF refusals."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.helpers import assert_error


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers from a script of statuses
    (the last one repeats)."""

    def __init__(self, statuses=(200,), body=b"ok"):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        self.body = body
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "body": body})
                    status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the dispatcher opens many connections at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def events(self, type_=None) -> list[dict]:
        out = [json.loads(r["body"]) for r in self.requests]
        return [e for e in out if type_ is None or e["type"] == type_]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _no_leftover_deliveries(app):
    """The dispatcher works across tenants: retries left by earlier tests (in this module or others whose
    events reach endpoints) would count in this test's totals.  Settle them first."""
    from sqlalchemy import update

    from app.extensions import db
    from app.tenancy import unscoped
    from app.webhooks.models import WebhookDelivery

    with app.app_context(), unscoped():
        db.session.execute(update(WebhookDelivery).where(WebhookDelivery.status.in_(("pending", "sending")))
                           .values(status="failed", next_attempt_at=None))
        db.session.commit()
    yield


def run_dispatcher(app):
    from app.webhooks.tasks import dispatch_webhooks
    with app.app_context():
        return dispatch_webhooks()


def emit(app, account, type_="contact.created", mode="test", **fields):
    """Record an event the way the domains do (``record_events``), committed: the listener fans it out."""
    from app.events.service import record_events
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], mode):
        [row] = record_events([{"type": type_, **fields}])
        db.session.commit()
    return row


def make_due(app, delivery_ids=None):
    """Bring every pending retry forward to now (instead of waiting minutes)."""
    from sqlalchemy import update

    from app.extensions import db
    from app.timeutil import utcnow
    from app.webhooks.models import WebhookDelivery
    with app.app_context():
        t = WebhookDelivery.__table__
        stmt = update(t).where(t.c.status == "pending")
        if delivery_ids:
            stmt = stmt.where(t.c.id.in_(delivery_ids))
        db.session.execute(stmt.values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def create(api, url, **body):
    resp = api.post("/webhooks", json={"url": url, **body})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_create_shows_the_secret_once_and_crud(test_api, receiver):
    created = create(test_api, receiver.url, description="Orders", events=["message.*", "contact.created"],
                     metadata={"team": "ops"})
    assert created["id"].startswith("wh_") and created["object"] == "webhook_endpoint"
    assert created["signing_secret"].startswith("whsec_")
    assert created["events"] == ["message.*", "contact.created"] and created["status"] == "enabled"
    got = test_api.get(f"/webhooks/{created['id']}").get_json()
    assert "signing_secret" not in got and got["url"] == receiver.url and got["metadata"] == {"team": "ops"}
    listed = test_api.get("/webhooks").get_json()
    assert listed["object"] == "list" and [w["id"] for w in listed["data"]] == [created["id"]]
    assert all("signing_secret" not in w for w in listed["data"])

    patched = test_api.patch(f"/webhooks/{created['id']}", json={"status": "paused", "events": ["*"],
                                                                 "description": None}).get_json()
    assert patched["status"] == "paused" and patched["events"] == ["*"] and patched["description"] is None
    assert test_api.patch(f"/webhooks/{created['id']}", json={"status": "enabled"}).get_json()["status"] == "enabled"
    deleted = test_api.delete(f"/webhooks/{created['id']}").get_json()
    assert deleted == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}
    assert_error(test_api.get(f"/webhooks/{created['id']}"), 404, "not_found")


def test_omitted_events_mean_all(test_api, receiver):
    assert create(test_api, receiver.url)["events"] == ["*"]


@pytest.mark.parametrize("body,param", [
    ({}, "url"),
    ({"url": 5}, "url"),
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://127.0.0.1:1/x", "events": ["message.nope"]}, "events"),
    ({"url": "http://127.0.0.1:1/x", "events": "message.*"}, "events"),
    ({"url": "http://127.0.0.1:1/x", "surprise": 1}, "surprise"),
    ({"url": "http://127.0.0.1:1/x", "metadata": {"k": 1}}, "metadata"),
])
def test_bad_input_is_400_naming_the_field(test_api, body, param):
    resp = test_api.post("/webhooks", json=body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["param"].split("[")[0] == param


def test_bad_update_and_query_are_400(test_api, receiver):
    wh = create(test_api, receiver.url)
    assert_error(test_api.patch(f"/webhooks/{wh['id']}", json={"status": "disabled"}), 400, "invalid_request",
                 "status")
    assert_error(test_api.patch(f"/webhooks/{wh['id']}", json={"url": "gopher://x"}), 400, "invalid_url", "url")
    assert test_api.get(f"/webhooks/{wh['id']}/deliveries?status=nope").status_code == 400
    assert test_api.get(f"/webhooks/{wh['id']}/deliveries?limit=0").status_code == 400


def test_live_mode_refuses_http_and_private_addresses(app, api, receiver, monkeypatch):
    assert_error(api.post("/webhooks", json={"url": receiver.url}), 400, "invalid_url", "url")
    # HTTPS stays required in live mode even when private addresses are allowed (tests allow them).
    assert app.config["ALLOW_PRIVATE_URLS"]
    assert api.post("/webhooks", json={"url": "https://127.0.0.1:9/hook"}).status_code == 201
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", False)
    for url in ("https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest",
                "https://[::1]/hook", "https://[::ffff:192.168.0.1]/hook", "https://0.0.0.0/hook",
                "https://localhost/hook"):
        err = assert_error(api.post("/webhooks", json={"url": url}), 400, "invalid_url", "url")
        assert "non-public" in err["message"], (url, err)


def test_test_mode_refuses_private_addresses_without_the_flag(app, test_api, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", False)
    assert_error(test_api.post("/webhooks", json={"url": receiver.url}), 400, "invalid_url", "url")


def test_ping_is_signed_per_standard_webhooks(test_api, receiver):
    wh = create(test_api, receiver.url)
    resp = test_api.post(f"/webhooks/{wh['id']}/test")
    assert resp.status_code == 200, resp.get_json()
    delivery = resp.get_json()
    assert delivery["status"] == "succeeded" and delivery["response_code"] == 200, (delivery["last_error"], delivery["attempts"])
    assert delivery["event_type"] == "webhook.test" and delivery["attempt_count"] == 1
    [request] = receiver.requests
    payload = Webhook(wh["signing_secret"]).verify(request["body"], request["headers"])
    assert set(payload) == {"id", "type", "created_at", "data"}
    assert payload["id"] == delivery["event_id"] == request["headers"]["webhook-id"]
    assert payload["type"] == "webhook.test" and payload["data"]["webhook_id"] == wh["id"]
    assert request["headers"]["webhook-signature"].startswith("v1,")
    assert {k.lower(): v for k, v in request["headers"].items()}["content-type"] == "application/json"
    [attempt] = delivery["attempts"]
    assert attempt["response_code"] == 200 and attempt["response_body"] == "ok" and attempt["trigger"] == "test"
    assert attempt["request_headers"]["webhook-id"] == payload["id"]
    assert json.loads(delivery["request_body"]) == payload


def test_rotation_invalidates_the_old_secret(test_api, receiver):
    wh = create(test_api, receiver.url)
    rotated = test_api.post(f"/webhooks/{wh['id']}/rotate-secret").get_json()
    assert rotated["signing_secret"].startswith("whsec_") and rotated["signing_secret"] != wh["signing_secret"]
    assert rotated["secret_rotated_at"]
    test_api.post(f"/webhooks/{wh['id']}/test")
    [request] = receiver.requests
    with pytest.raises(WebhookVerificationError):
        Webhook(wh["signing_secret"]).verify(request["body"], request["headers"])
    Webhook(rotated["signing_secret"]).verify(request["body"], request["headers"])


def test_fails_twice_then_succeeds_shows_three_attempts(app, test_api, account):
    receiver = Receiver(statuses=(500, 503, 200))
    try:
        wh = create(test_api, receiver.url, events=["contact.*"])
        emit(app, account, contact_id="con_retry")
        assert run_dispatcher(app)["retrying"] == 1
        [d] = test_api.get(f"/webhooks/{wh['id']}/deliveries").get_json()["data"]
        assert d["status"] == "pending" and d["attempt_count"] == 1 and d["response_code"] == 500
        assert d["next_attempt_at"] is not None
        assert run_dispatcher(app) == {}  # not due yet: the first retry waits 5 s
        make_due(app)
        run_dispatcher(app)
        make_due(app)
        assert run_dispatcher(app)["succeeded"] == 1
        detail = test_api.get(f"/webhooks/{wh['id']}/deliveries/{d['id']}").get_json()
        assert detail["status"] == "succeeded" and detail["attempt_count"] == 3 and detail["next_attempt_at"] is None
        assert [a["response_code"] for a in detail["attempts"]] == [200, 503, 500]
        assert [a["attempt"] for a in detail["attempts"]] == [3, 2, 1]
        ids = {r["headers"]["webhook-id"] for r in receiver.requests}
        assert len(receiver.requests) == 3 and ids == {d["event_id"]}  # webhook-id stable across retries
        assert len({r["headers"]["webhook-timestamp"] + r["headers"]["webhook-signature"]
                    for r in receiver.requests}) >= 1
        assert receiver.events()[0]["type"] == "contact.created"
    finally:
        receiver.close()


def test_retries_follow_the_schedule_then_fail(app, test_api, account):
    receiver = Receiver(statuses=(500,))
    try:
        wh = create(test_api, receiver.url)
        emit(app, account, recipient="always-fails@example.com")
        schedule = app.config["WEBHOOK_RETRY_SCHEDULE"]
        assert sum(schedule) >= 24 * 3600
        for _ in range(len(schedule) + 1):
            run_dispatcher(app)
            make_due(app)
        [d] = test_api.get(f"/webhooks/{wh['id']}/deliveries").get_json()["data"]
        assert d["status"] == "failed" and d["attempt_count"] == len(schedule) + 1 and d["next_attempt_at"] is None
        assert run_dispatcher(app) == {}
        assert len(receiver.requests) == len(schedule) + 1
    finally:
        receiver.close()


def test_410_disables_the_endpoint(app, test_api, account):
    receiver = Receiver(statuses=(410,))
    try:
        wh = create(test_api, receiver.url)
        emit(app, account, recipient="gone-1@example.com")
        emit(app, account, recipient="gone-2@example.com")
        from app.webhooks.tasks import dispatch_webhooks
        with app.app_context():
            dispatch_webhooks(batch_size=1)
        got = test_api.get(f"/webhooks/{wh['id']}").get_json()
        assert got["status"] == "disabled" and got["disabled_reason"] == "gone" and got["disabled_at"]
        deliveries = test_api.get(f"/webhooks/{wh['id']}/deliveries").get_json()["data"]
        assert [d["status"] for d in deliveries] == ["failed", "failed"]
        assert len(receiver.requests) == 1  # the other delivery was not attempted
        emit(app, account, recipient="gone-3@example.com")
        assert len(test_api.get(f"/webhooks/{wh['id']}/deliveries").get_json()["data"]) == 2  # no new ones
        # Resuming re-enables it.
        assert test_api.patch(f"/webhooks/{wh['id']}", json={"status": "enabled"}).get_json()["disabled_reason"] is None
    finally:
        receiver.close()


def test_failing_for_five_days_disables(app, test_api, account):
    receiver = Receiver(statuses=(500,))
    try:
        wh = create(test_api, receiver.url)
        from sqlalchemy import update

        from app.extensions import db
        from app.timeutil import utcnow
        from app.webhooks.models import WebhookEndpoint
        with app.app_context():
            t = WebhookEndpoint.__table__
            db.session.execute(update(t).where(t.c.id == wh["id"]).values(
                failing_since=utcnow() - timedelta(days=5, minutes=1)))
            db.session.commit()
        emit(app, account, recipient="five-days@example.com")
        run_dispatcher(app)
        got = test_api.get(f"/webhooks/{wh['id']}").get_json()
        assert got["status"] == "disabled" and got["disabled_reason"] == "failing"
        # The sweeper finds endpoints that failed long ago too.
        wh2 = create(test_api, receiver.url)
        with app.app_context():
            db.session.execute(update(t).where(t.c.id == wh2["id"]).values(
                failing_since=utcnow() - timedelta(days=6)))
            db.session.commit()
        from app.webhooks.tasks import sweep_webhooks
        with app.app_context():
            assert sweep_webhooks()["disabled"] >= 1
        assert test_api.get(f"/webhooks/{wh2['id']}").get_json()["status"] == "disabled"
    finally:
        receiver.close()


def test_paused_endpoints_hold_deliveries_until_resumed(app, test_api, account, receiver):
    wh = create(test_api, receiver.url, events=["contact.created"])
    test_api.patch(f"/webhooks/{wh['id']}", json={"status": "paused"})
    emit(app, account, recipient="while-paused@example.com")
    assert test_api.get(f"/webhooks/{wh['id']}/deliveries").get_json()["data"] == []  # paused: nothing recorded
    test_api.patch(f"/webhooks/{wh['id']}", json={"status": "enabled"})
    emit(app, account, recipient="after-resume@example.com")
    run_dispatcher(app)
    assert [e["data"]["recipient"] for e in receiver.events("contact.created")] == ["after-resume@example.com"]


def test_manual_retry_sends_the_same_event_again(app, test_api):
    receiver = Receiver(statuses=(500, 200))
    try:
        wh = create(test_api, receiver.url)
        first = test_api.post(f"/webhooks/{wh['id']}/test").get_json()
        assert first["status"] == "failed" and first["response_code"] == 500  # a failed test is not retried
        retried = test_api.post(f"/webhooks/{wh['id']}/deliveries/{first['id']}/retry")
        assert retried.status_code == 200
        body = retried.get_json()
        assert body["status"] == "succeeded" and body["attempt_count"] == 2
        assert [a["trigger"] for a in body["attempts"]] == ["manual", "test"]
        assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
        assert receiver.requests[0]["headers"]["webhook-id"] == receiver.requests[1]["headers"]["webhook-id"]
    finally:
        receiver.close()


def test_unreachable_endpoint_is_an_attempt_not_an_error(app, test_api):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    wh = create(test_api, f"http://127.0.0.1:{port}/hook")
    body = test_api.post(f"/webhooks/{wh['id']}/test").get_json()
    assert body["status"] == "failed" and body["response_code"] is None
    assert body["attempts"][0]["error"].startswith("Connection failed")


def test_event_filtering_and_mode(app, test_api, account, receiver):
    only_deleted = create(test_api, receiver.url, events=["contact.deleted"])
    contacts = create(test_api, receiver.url + "?contacts", events=["contact.*"])
    everything = create(test_api, receiver.url + "?all")
    emit(app, account, "contact.created", contact_id="con_1")
    emit(app, account, "contact.deleted", contact_id="con_1")
    emit(app, account, "domain.verified", data={"domain": "x.example"})
    emit(app, account, "contact.created", mode="live", contact_id="con_live")  # live: no test endpoint gets it
    run_dispatcher(app)
    by_path = {}
    for r in receiver.requests:
        by_path.setdefault(r["path"], []).append(json.loads(r["body"])["type"])
    assert by_path["/hook"] == ["contact.deleted"]
    assert sorted(by_path["/hook?contacts"]) == ["contact.created", "contact.deleted"]
    assert sorted(by_path["/hook?all"]) == ["contact.created", "contact.deleted", "domain.verified"]
    domain_event = next(e for e in receiver.events("domain.verified"))
    assert domain_event["data"] == {"domain": "x.example"}
    assert len(test_api.get(f"/webhooks/{only_deleted['id']}/deliveries").get_json()["data"]) == 1
    assert contacts and everything


def test_deliveries_list_paginates_and_filters(app, test_api, receiver):
    wh = create(test_api, receiver.url)
    ids = [test_api.post(f"/webhooks/{wh['id']}/test").get_json()["id"] for _ in range(3)]
    page = test_api.get(f"/webhooks/{wh['id']}/deliveries?limit=2").get_json()
    assert page["has_more"] is True and [d["id"] for d in page["data"]] == ids[::-1][:2]
    assert page["url"] == f"/api/v1/webhooks/{wh['id']}/deliveries"
    rest = test_api.get(f"/webhooks/{wh['id']}/deliveries?limit=2&starting_after={ids[1]}").get_json()
    assert [d["id"] for d in rest["data"]] == [ids[0]] and rest["has_more"] is False
    assert len(test_api.get(f"/webhooks/{wh['id']}/deliveries?status=succeeded").get_json()["data"]) == 3
    assert test_api.get(f"/webhooks/{wh['id']}/deliveries?status=failed").get_json()["data"] == []
    assert set(page["data"][0]) >= {"id", "event_id", "event_type", "status", "response_code", "attempt_count",
                                    "next_attempt_at", "created_at"}


def test_other_tenants_and_modes_get_404(api, test_api, other_api, receiver):
    theirs = create(test_api, receiver.url)
    delivery = test_api.post(f"/webhooks/{theirs['id']}/test").get_json()["id"]
    for client in (other_api, api):  # another organization; the same organization's other mode
        for method, path, body in [
            ("GET", f"/webhooks/{theirs['id']}", None),
            ("PATCH", f"/webhooks/{theirs['id']}", {"description": "x"}),
            ("DELETE", f"/webhooks/{theirs['id']}", None),
            ("POST", f"/webhooks/{theirs['id']}/rotate-secret", None),
            ("POST", f"/webhooks/{theirs['id']}/test", None),
            ("GET", f"/webhooks/{theirs['id']}/deliveries", None),
            ("GET", f"/webhooks/{theirs['id']}/deliveries/{delivery}", None),
            ("POST", f"/webhooks/{theirs['id']}/deliveries/{delivery}/retry", None),
        ]:
            assert_error(client.request(method, path, json=body), 404, "not_found")
        assert theirs["id"] not in [w["id"] for w in client.get("/webhooks").get_json()["data"]]
    assert len(receiver.requests) == 1


def test_a_delivery_of_another_endpoint_is_404(test_api, receiver):
    a, b = create(test_api, receiver.url), create(test_api, receiver.url)
    delivery = test_api.post(f"/webhooks/{a['id']}/test").get_json()["id"]
    assert_error(test_api.get(f"/webhooks/{b['id']}/deliveries/{delivery}"), 404, "not_found")


def test_scopes(app, client, account, receiver):
    from app.apikeys.service import create_key
    from app.extensions import db
    from app.tenancy import tenant_scope
    from tests.helpers import ApiClient
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        _, read_secret = create_key(account["organization_id"], name="r", test_mode=True, preset="read")
        db.session.commit()
    reader = ApiClient(client, read_secret)
    assert reader.get("/webhooks").status_code == 200
    assert_error(reader.post("/webhooks", json={"url": receiver.url}), 403, "forbidden")
