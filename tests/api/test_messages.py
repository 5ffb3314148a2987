"""`/messages` through the Flask test client: validation, the test-mode simulator, batches, the generic
form, reading and filtering (API.md 3).  Live delivery over SMTP is in tests/integration/test_delivery.py."""
from __future__ import annotations

import base64

import pytest

from tests.helpers import assert_error

FROM = "Acme <hello@acme.example>"


def dispatch(app):
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        return dispatch_email()


def send(api, **body):
    body.setdefault("from", FROM)
    body.setdefault("subject", "Hi")
    body.setdefault("text", "Hello")
    return api.post("/messages/email", json=body)


def detail(api, message_id):
    resp = api.get(f"/messages/{message_id}")
    assert resp.status_code == 200
    return resp.get_json()


@pytest.mark.parametrize("address,status,events", [
    ("delivered@simulator.test", "delivered", ["message.queued", "message.sent", "message.delivered"]),
    ("opened@simulator.test", "delivered", ["message.queued", "message.sent", "message.delivered",
                                            "message.opened"]),
    ("clicked@simulator.test", "delivered", ["message.queued", "message.sent", "message.delivered",
                                             "message.opened", "message.clicked"]),
    ("bounce@simulator.test", "bounced", ["message.queued", "message.bounced"]),
    ("complaint@simulator.test", "complained", ["message.queued", "message.sent", "message.delivered",
                                                "message.complained"]),
    ("anyone@example.com", "delivered", ["message.queued", "message.sent", "message.delivered"]),
])
def test_test_mode_simulator(app, test_api, address, status, events):
    resp = send(test_api, to=address)
    assert resp.status_code == 202, resp.get_json()
    msg = resp.get_json()
    assert msg["status"] == "queued"
    dispatch(app)
    got = detail(test_api, msg["id"])
    assert got["status"] == status
    assert [e["type"] for e in got["events"]] == events
    assert got["attempts"][0]["mx_host"] == "simulator"
    sups = test_api.get(f"/suppressions?recipient={address}").get_json()["data"]
    expected = {"bounce@simulator.test": ["bounce"], "complaint@simulator.test": ["complaint"]}.get(address, [])
    assert [s["reason"] for s in sups] == expected
    if expected:  # and the next send to them is suppressed
        assert send(test_api, to=address).get_json()["status"] == "suppressed"


def test_test_mode_needs_no_verified_domain_and_live_does(test_api, api):
    assert send(test_api, to="a@example.com").status_code == 202
    assert_error(send(api, to="a@example.com"), 422, "from_not_verified", "from")


def test_test_and_live_messages_are_separate(app, test_api, api, other_api):
    msg = send(test_api, to="delivered@simulator.test").get_json()
    assert_error(api.get(f"/messages/{msg['id']}"), 404, "not_found")
    assert_error(other_api.get(f"/messages/{msg['id']}"), 404, "not_found")
    assert api.get("/messages").get_json()["data"] == []


@pytest.mark.parametrize("body,code,param", [
    ({"to": "not-an-email"}, "invalid_email", "to"),
    ({"to": ["ok@example.com", "bad@"]}, "invalid_email", "to[1]"),
    ({"to": {"email": "a@example.com", "nmae": "x"}}, "invalid_email", "to"),
    ({"to": "a@example.com", "subject": "Hi\r\nBcc: victim@example.com"}, "invalid_request", "subject"),
    ({"to": "Evil\r\nBcc: x@example.com <a@example.com>"}, "invalid_email", "to"),
    ({"to": {"email": "a@example.com", "name": "A\nBcc: x@y.z"}}, "invalid_email", "to"),
    ({"to": "a@example.com", "headers": {"X-Ok": "a\r\nBcc: x@example.com"}}, "invalid_request", "headers.X-Ok"),
    ({"to": "a@example.com", "headers": {"DKIM-Signature": "x"}}, "invalid_request", "headers"),
    ({"to": "a@example.com", "headers": {"Bad Name": "x"}}, "invalid_request", "headers"),
    ({"to": "a@example.com", "frm": "x@example.com"}, "invalid_request", "frm"),
    ({"to": "a@example.com", "message_type": "promo"}, "invalid_request", "message_type"),
    ({"to": "a@example.com", "track_opens": "yes"}, "invalid_request", "track_opens"),
    ({"to": "a@example.com", "send_at": "2026-01-01T10:00:00"}, "invalid_request", "send_at"),
    ({"to": "a@example.com", "send_at": "2099-01-01T10:00:00Z"}, "invalid_request", "send_at"),
    ({"to": "a@example.com", "attachments": [{"filename": "a.txt", "content": "***"}]}, "invalid_request",
     "attachments[0].content"),
    ({"to": "a@example.com", "attachments": [{"filename": "a\r\n.txt", "content": "YQ=="}]}, "invalid_request",
     "attachments[0].filename"),
    ({"to": ["a%d@example.com" % i for i in range(51)]}, "invalid_email", "to"),
    ({"to": "a@example.com", "metadata": {"k": 1}}, "invalid_request", "metadata"),
    ({"to": "a@example.com", "tags": "vip"}, "invalid_request", "tags"),
])
def test_bad_input_is_a_400_naming_the_field(test_api, body, code, param):
    assert_error(send(test_api, **body), 400, code, param)


def test_missing_content_and_recipients(test_api):
    assert_error(test_api.post("/messages/email", json={"from": FROM, "subject": "x", "text": "y"}),
                 400, "invalid_request", "to")
    assert_error(test_api.post("/messages/email", json={"from": FROM, "to": "a@example.com", "subject": "x"}),
                 400, "invalid_request", "html")
    assert_error(test_api.post("/messages/email", json={"from": FROM, "to": "a@example.com", "text": "x"}),
                 400, "invalid_request", "subject")


def test_attachments_over_10_mib_are_413(test_api):
    big = base64.b64encode(b"\0" * (10 * 1024 * 1024 + 1)).decode()
    resp = send(test_api, to="a@example.com", attachments=[{"filename": "big.bin", "content": big}])
    assert_error(resp, 413, "payload_too_large", "attachments")


def test_nothing_is_half_written_on_error(test_api):
    assert send(test_api, to="a@example.com", send_at="2099-01-01T10:00:00Z").status_code == 400
    assert test_api.get("/messages").get_json()["data"] == []


def test_suppressed_recipients_are_recorded_not_sent(app, test_api):
    assert test_api.post("/suppressions", json={"channel": "email", "recipient": "No@Example.com"}).status_code \
        in (200, 201)
    msg = send(test_api, to=["no@example.com", "yes@example.com"]).get_json()
    assert msg["status"] == "queued"
    dispatch(app)
    got = detail(test_api, msg["id"])
    statuses = {r["address"]: r["status"] for r in got["recipients"]}
    assert statuses == {"no@example.com": "suppressed", "yes@example.com": "delivered"}
    assert got["status"] == "suppressed"  # the least advanced of its recipients
    assert [a["recipient"] for a in got["attempts"]] == ["yes@example.com"]

    only = send(test_api, to="no@example.com").get_json()
    assert only["status"] == "suppressed" and only["status_reason"] == "manual"


def test_marketing_to_unconsented_is_suppressed_no_consent(test_api):
    test_api.post("/contacts", json={"email": "in@example.com", "consent": {"email": "subscribed"}})
    test_api.post("/contacts", json={"email": "out@example.com", "consent": {"email": "unsubscribed"}})
    assert send(test_api, to="in@example.com", message_type="marketing").get_json()["status"] == "queued"
    for to in ("out@example.com", "stranger@example.com"):
        msg = send(test_api, to=to, message_type="marketing").get_json()
        assert (msg["status"], msg["status_reason"]) == ("suppressed", "no_consent")
    # Transactional mail is not a marketing send: consent does not apply.
    assert send(test_api, to="out@example.com").get_json()["status"] == "queued"


def test_batch_keeps_order_and_isolates_failures(app, test_api):
    items = [{"from": FROM, "to": "one@example.com", "subject": "1", "text": "a"},
             {"from": FROM, "to": "bad", "subject": "2", "text": "b"},
             {"from": FROM, "to": "three@example.com", "subject": "3", "text": "c", "typo": 1},
             {"from": FROM, "to": "four@example.com", "subject": "4", "html": "<p>d</p>"}]
    resp = test_api.post("/messages/batch", json={"items": items})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["queued"], body["failed"]) == (2, 2) and body["batch_id"].startswith("batch_")
    assert [d["success"] for d in body["data"]] == [True, False, False, True]
    assert body["data"][1]["error"]["param"] == "to" and body["data"][1]["error"]["code"] == "invalid_email"
    assert body["data"][2]["error"]["param"] == "typo"
    assert body["data"][0]["response"]["to"] == [{"email": "one@example.com", "name": None}]
    dispatch(app)
    for item in (body["data"][0], body["data"][3]):
        assert detail(test_api, item["response"]["id"])["status"] == "delivered"


def test_batch_shared_form_and_limits(test_api):
    resp = test_api.post("/messages/batch", json={
        "from": FROM, "subject": "Shared", "messages": [{"to": "a@example.com", "text": "x"},
                                                       {"to": "b@example.com", "html": "<b>y</b>"}]})
    assert resp.status_code == 200 and resp.get_json()["queued"] == 2
    assert_error(test_api.post("/messages/batch", json={"items": []}), 400, "invalid_request", "items")
    too_many = [{"from": FROM, "to": "a@example.com", "subject": "s", "text": "t"}] * 1001
    assert_error(test_api.post("/messages/batch", json={"items": too_many}), 400, "invalid_request", "items")
    assert_error(test_api.post("/messages/batch", json={"items": [1], "messages": [1]}), 400, "invalid_request")


def test_generic_form(test_api, app):
    body = {"channel": "email", "idempotency_key": "gen-1", "destination": "gen@example.com",
            "payload": {"from": FROM, "subject": "Generic", "text": "hello"}, "metadata": {"k": "v"}}
    first = test_api.post("/messages", json=body)
    assert first.status_code == 202, first.get_json()
    again = test_api.post("/messages", json=body)  # the body's idempotency_key works like the header
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    changed = test_api.post("/messages", json={**body, "destination": "other@example.com"})
    assert_error(changed, 409, "idempotency_key_reused")

    sms = {**body, "channel": "sms", "idempotency_key": "gen-2", "destination": "+14155550123"}
    assert_error(test_api.post("/messages", json=sms), 400, "unsupported_channel", "channel")
    no_key = {k: v for k, v in body.items() if k != "idempotency_key"}
    assert_error(test_api.post("/messages", json=no_key), 400, "invalid_request", "idempotency_key")
    bad_dest = {**body, "idempotency_key": "gen-3", "destination": "nope"}
    assert_error(test_api.post("/messages", json=bad_dest), 400, "invalid_email", "destination")
    bad_payload = {**body, "idempotency_key": "gen-4", "payload": {"from": FROM, "subject": "x", "txt": "y"}}
    assert_error(test_api.post("/messages", json=bad_payload), 400, "invalid_request", "payload.txt")


def test_list_filters_and_pagination(app, test_api):
    a = send(test_api, to="f1@example.com", tags=["welcome"]).get_json()
    b = send(test_api, to="f2@example.com", tags=["receipt"]).get_json()
    c = send(test_api, to="bounce@simulator.test").get_json()
    dispatch(app)
    ids = lambda resp: [m["id"] for m in resp.get_json()["data"]]  # noqa: E731
    assert ids(test_api.get("/messages")) == [c["id"], b["id"], a["id"]]
    assert ids(test_api.get("/messages?tag=welcome")) == [a["id"]]
    assert ids(test_api.get("/messages?to=F2@example.com")) == [b["id"]]
    assert ids(test_api.get("/messages?status=bounced")) == [c["id"]]
    assert ids(test_api.get("/messages?channel=email&limit=2")) == [c["id"], b["id"]]
    page = test_api.get(f"/messages?limit=2&starting_after={b['id']}").get_json()
    assert [m["id"] for m in page["data"]] == [a["id"]] and page["has_more"] is False
    assert ids(test_api.get("/messages?created[gte]=2000-01-01T00:00:00Z")) == [c["id"], b["id"], a["id"]]
    assert ids(test_api.get("/messages?created[lte]=2000-01-01T00:00:00Z")) == []
    assert_error(test_api.get("/messages?status=lost"), 400, "invalid_request", "status")
    assert_error(test_api.get("/messages?starting_after=msg_nope"), 400, "invalid_request", "starting_after")


def test_cancel_only_scheduled(test_api):
    msg = send(test_api, to="a@example.com").get_json()
    assert_error(test_api.post(f"/messages/{msg['id']}/cancel"), 409, "message_not_cancelable")
    assert_error(test_api.post("/messages/msg_nope/cancel"), 404, "not_found")


def test_scopes(client, app, account):
    from tests.helpers import ApiClient

    read_only = ApiClient(client, account["test_api_key"])
    resp = read_only.post("/api-keys", json={"name": "reader", "scope": "read", "test_mode": True})
    reader = ApiClient(client, resp.get_json()["secret"])
    assert_error(send(reader, to="a@example.com"), 403, "forbidden")
    assert reader.get("/messages").status_code == 200


def test_concurrent_claims_are_disjoint_and_bounded(app, test_api):
    """Several dispatchers claiming at once never take the same message, nor more than they asked for."""
    import threading

    from app.delivery.service import claim_due
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import unscoped
    from sqlalchemy import update

    dispatch(app)  # earlier tests' leftovers
    items = [{"from": FROM, "to": f"c{i}@example.com", "subject": "s", "text": "t"} for i in range(120)]
    assert test_api.post("/messages/batch", json={"items": items}).get_json()["queued"] == 120
    claimed: list[list[str]] = []
    lock = threading.Lock()

    def worker():
        with app.app_context():
            while True:
                ids = claim_due(7)
                if not ids:
                    break
                assert len(ids) <= 7
                with lock:
                    claimed.append(ids)
            db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    flat = [i for ids in claimed for i in ids]
    assert len(flat) == len(set(flat)) >= 120
    with app.app_context(), unscoped():  # hand them back to the dispatcher and let it finish them
        db.session.execute(update(Message).where(Message.id.in_(flat)).values(status="queued"))
        db.session.commit()
    dispatch(app)
