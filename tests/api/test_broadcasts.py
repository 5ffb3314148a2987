"""`/broadcasts` and `/send/bulk` through the Flask test client (API.md 6): drafts, every action and error,
the set-based fan-out (consent, suppressions, resumability, at-most-once), per-recipient rendering, stats.
Jobs are run in-process here; a real worker process and SMTP are in
tests/integration/test_broadcast_delivery.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from tests.helpers import assert_error

FROM = "Acme News <news@acme.example>"


def create(api, **body):
    body.setdefault("name", "Spring newsletter")
    body.setdefault("from", FROM)
    body.setdefault("subject", "Hi {{first_name}}")
    if "template_id" not in body:
        body.setdefault("html", "<p>Hello {{first_name}} {{last_name}} ({{email}}) {{code}}</p>")
    return api.post("/broadcasts", json={k: v for k, v in body.items() if v is not None})


def created(api, **body):
    resp = create(api, **body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def subscribe(api, *emails, first_name=None):
    for email in emails:
        body = {"email": email, "consent": {"email": True}}
        if first_name:
            body["first_name"] = first_name
        resp = api.post("/contacts", json=body)
        assert resp.status_code in (200, 201), resp.get_json()


def fan_out(app, account, broadcast_id, mode="test"):
    from app.broadcasts.tasks import fan_out_broadcast
    with app.app_context():
        return fan_out_broadcast(broadcast_id, tenant=(account["organization_id"], mode))


def dispatch(app):
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        return dispatch_email()


def messages_of(api, broadcast_id):
    out, after = [], None
    while True:
        url = f"/messages?broadcast_id={broadcast_id}&limit=100" + (f"&starting_after={after}" if after else "")
        page = api.get(url).get_json()
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["data"][-1]["id"]


# --- drafts -------------------------------------------------------------------------------------------------

def test_create_read_list_update_delete_a_draft(test_api):
    b = created(test_api, recipients=[{"email": "Ann@Example.com", "data": {"code": "A1"}}],
                metadata={"team": "growth"}, tags=["spring"], brand_id="brand_x", track_opens=True)
    assert b["id"].startswith("bc_") and b["object"] == "broadcast"
    assert (b["status"], b["channel"], b["message_type"]) == ("draft", "email", "marketing")
    assert b["from"] == {"email": "news@acme.example", "name": "Acme News"}
    assert b["inline_recipients"] == 1 and b["audience_list_id"] is None
    assert b["metadata"] == {"team": "growth"} and b["tags"] == ["spring"] and b["track_opens"] is True
    assert b["stats"]["total"] == 0

    got = test_api.get(f"/broadcasts/{b['id']}").get_json()
    assert got["name"] == "Spring newsletter" and set(got["stats"]) >= {
        "total", "queued", "sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed",
        "failed", "suppressed"}
    # The inline recipient became a contact (consent unknown: nothing is changed about an existing one).
    contact = test_api.get("/contacts?email=ann@example.com").get_json()["data"][0]
    assert contact["consent"]["email"] == "unknown"

    second = created(test_api, name="Second")
    page = test_api.get("/broadcasts?limit=1").get_json()
    assert page["object"] == "list" and page["has_more"] is True and page["data"][0]["id"] == second["id"]
    assert test_api.get(f"/broadcasts?limit=1&starting_after={second['id']}").get_json()["data"][0]["id"] == b["id"]
    assert [x["id"] for x in test_api.get("/broadcasts?status=draft").get_json()["data"]] == [second["id"], b["id"]]

    patched = test_api.patch(f"/broadcasts/{b['id']}", json={"name": "Renamed", "subject": "New subject",
                                                              "message_type": "transactional"})
    assert patched.status_code == 200, patched.get_json()
    assert (patched.get_json()["name"], patched.get_json()["subject"]) == ("Renamed", "New subject")
    assert patched.get_json()["message_type"] == "transactional"

    deleted = test_api.delete(f"/broadcasts/{second['id']}")
    assert deleted.get_json() == {"id": second["id"], "object": "broadcast", "deleted": True}
    assert_error(test_api.get(f"/broadcasts/{second['id']}"), 404, "not_found", "id")


@pytest.mark.parametrize("body,status,code,param", [
    ({"channel": "sms"}, 400, "unsupported_channel", "channel"),
    ({"channel": "fax"}, 400, "__any__", "channel"),
    ({"subject": "Hi\r\nBcc: x@evil.example"}, 400, "__any__", "subject"),
    ({"from": "News <news@acme.example>\nBcc: x@evil.example"}, 400, "__any__", "from"),
    ({"html": None, "text": None, "subject": "s"}, 400, "__any__", "__any__"),
    ({"html": "<p>{{#open}}</p>"}, 400, "invalid_template", "html"),
    ({"template_id": "tmpl_nope", "html": None}, 404, "not_found", "template_id"),
    ({"audience_list_id": "list_nope"}, 404, "not_found", "audience_list_id"),
    ({"audience_list_id": "list_x", "recipients": [{"email": "a@example.com"}]}, 400, "__any__", "recipients"),
    ({"recipients": [{"email": "not-an-email"}]}, 400, "invalid_email", "__any__"),
    ({"recipients": [{"data": {}}]}, 400, "__any__", "__any__"),
    ({"message_type": "spam"}, 400, "__any__", "message_type"),
    ({"surprise": 1}, 400, "__any__", "surprise"),
    ({"metadata": {"k": 1}}, 400, "__any__", "metadata"),
])
def test_create_validation(test_api, body, status, code, param):
    payload = {"name": "n", "from": FROM, "subject": "s", "html": "<p>x</p>", **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    resp = test_api.post("/broadcasts", json=payload)
    assert resp.status_code == status, resp.get_json()
    err = resp.get_json()["error"]
    if code != "__any__":
        assert err["code"] == code, err
    if param != "__any__":
        assert err["param"] == param, err


def test_too_many_inline_recipients(test_api):
    recipients = [{"email": f"r{i}@example.com"} for i in range(10_001)]
    assert_error(create(test_api, recipients=recipients), 400, "invalid_request", "recipients")


def test_live_from_must_be_verified(api):
    assert_error(create(api), 422, "from_not_verified", "from")


def test_inactive_or_sms_template_refused(test_api):
    tmpl = test_api.post("/templates", json={"name": "t", "subject": "S", "html": "<p>x</p>", "is_active": False})
    assert tmpl.status_code == 201, tmpl.get_json()
    assert_error(create(test_api, template_id=tmpl.get_json()["id"], html=None), 400, "invalid_template", "template_id")


def test_only_drafts_change_and_actions_refuse_wrong_states(app, account, test_api):
    subscribe(test_api, "fan@example.com")
    b = created(test_api, recipients=[{"email": "fan@example.com"}])
    assert test_api.post(f"/broadcasts/{b['id']}/send").status_code == 202
    assert_error(test_api.patch(f"/broadcasts/{b['id']}", json={"name": "x"}), 409, "broadcast_not_editable", "id")
    assert_error(test_api.delete(f"/broadcasts/{b['id']}"), 409, "broadcast_not_editable", "id")
    assert_error(test_api.post(f"/broadcasts/{b['id']}/send"), 409, "broadcast_not_sendable", "id")
    later = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert_error(test_api.post(f"/broadcasts/{b['id']}/schedule", json={"scheduled_at": later}), 409,
                 "broadcast_not_schedulable", "id")
    fan_out(app, account, b["id"])
    assert test_api.get(f"/broadcasts/{b['id']}").get_json()["status"] == "sent"
    assert_error(test_api.post(f"/broadcasts/{b['id']}/cancel"), 409, "broadcast_not_cancelable", "id")
    draft = created(test_api)
    assert_error(test_api.post(f"/broadcasts/{draft['id']}/cancel"), 409, "broadcast_not_cancelable", "id")
    # A draft with no audience cannot be sent.
    assert_error(test_api.post(f"/broadcasts/{draft['id']}/send"), 400, "invalid_request", "audience_list_id")
    assert_error(test_api.get("/broadcasts/bc_doesnotexist"), 404, "not_found", "id")


def test_other_tenants_and_modes_see_nothing(test_api, api, other_api):
    b = created(test_api)
    later = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    for client in (api, other_api):
        for method, path, body in [("GET", "", None), ("PATCH", "", {"name": "x"}), ("DELETE", "", None),
                                   ("POST", "/send", None), ("POST", "/cancel", None),
                                   ("POST", "/schedule", {"scheduled_at": later}),
                                   ("POST", "/test", {"recipients": ["a@example.com"]})]:
            assert_error(client.request(method, f"/broadcasts/{b['id']}{path}", json=body), 404, "not_found", "id")
        assert client.get("/broadcasts").get_json()["data"] == []
        assert_error(client.get(f"/broadcasts?starting_after={b['id']}"), 400, "invalid_request", "starting_after")
    assert test_api.get(f"/broadcasts/{b['id']}").get_json()["status"] == "draft"


# --- sending, fan-out, rules -----------------------------------------------------------------------------------

def test_send_fans_out_with_consent_and_suppressions_and_renders_per_recipient(app, account, test_api):
    subscribe(test_api, "ann@example.com", first_name="Ann")
    subscribe(test_api, "bob@example.com", first_name="Bob")
    subscribe(test_api, "gone@example.com")
    assert test_api.post("/suppressions", json={"channel": "email", "recipient": "gone@example.com",
                                                "reason": "manual"}).status_code in (200, 201)
    b = created(test_api, recipients=[
        {"email": "ann@example.com", "data": {"code": "A-1"}}, {"email": "bob@example.com", "data": {"code": "B-2"}},
        {"email": "gone@example.com"}, {"email": "cold@example.com"}])

    sent = test_api.post(f"/broadcasts/{b['id']}/send")
    assert sent.status_code == 202 and sent.get_json()["status"] == "sending"
    result = fan_out(app, account, b["id"])
    assert result["done"] and (result["queued"], result["suppressed"]) == (2, 2)

    msgs = {m["to"][0]["email"]: m for m in messages_of(test_api, b["id"])}
    assert set(msgs) == {"ann@example.com", "bob@example.com", "gone@example.com", "cold@example.com"}
    assert (msgs["gone@example.com"]["status"], msgs["gone@example.com"]["status_reason"]) == ("suppressed", "manual")
    assert (msgs["cold@example.com"]["status"], msgs["cold@example.com"]["status_reason"]) == ("suppressed",
                                                                                                "no_consent")
    assert msgs["ann@example.com"]["status"] == "queued" and msgs["ann@example.com"]["subject"] is None
    detail = test_api.get(f"/messages/{msgs['cold@example.com']['id']}").get_json()
    assert [e["type"] for e in detail["events"]] == ["message.suppressed"]
    assert detail["events"][0]["data"] == {"reason": "no_consent", "broadcast_id": b["id"]}
    assert detail["recipients"][0]["status"] == "suppressed"

    # Rendering at delivery: each recipient gets their own name, data and unsubscribe link.
    from app.broadcasts.render import load_batch
    from app.extensions import db
    from app.messages.models import Message, MessageRecipient
    from app.tenancy import unscoped
    with app.app_context(), unscoped():
        rows = db.session.execute(select(Message).where(Message.broadcast_id == b["id"],
                                                        Message.status == "queued")).scalars().all()
        batch = load_batch(rows)
        rendered = {}
        for m in rows:
            r = db.session.execute(select(MessageRecipient).where(MessageRecipient.message_id == m.id)).scalar_one()
            rendered[r.address] = batch.render(m, r)
    assert rendered["ann@example.com"][0] == "Hi Ann"
    assert "Hello Ann  (ann@example.com) A-1" in rendered["ann@example.com"][1]
    assert "Hello Bob  (bob@example.com) B-2" in rendered["bob@example.com"][1]

    dispatch(app)
    got = test_api.get(f"/broadcasts/{b['id']}").get_json()
    assert got["status"] == "sent" and got["total_recipients"] == 4
    assert (got["queued_count"], got["suppressed_count"]) == (2, 2)
    stats = got["stats"]
    assert (stats["total"], stats["delivered"], stats["sent"], stats["suppressed"], stats["queued"]) == (4, 2, 2, 2, 0)


def test_transactional_broadcast_skips_only_suppressions(app, account, test_api):
    test_api.post("/suppressions", json={"channel": "email", "recipient": "blocked@example.com", "reason": "manual"})
    b = created(test_api, message_type="transactional",
                recipients=[{"email": "cold@example.com"}, {"email": "blocked@example.com"}])
    test_api.post(f"/broadcasts/{b['id']}/send")
    fan_out(app, account, b["id"])
    statuses = {m["to"][0]["email"]: m["status"] for m in messages_of(test_api, b["id"])}
    assert statuses == {"cold@example.com": "queued", "blocked@example.com": "suppressed"}


def test_list_audience_and_event_backbone(app, account, test_api):
    subscribe(test_api, "l1@example.com", "l2@example.com", "l3@example.com")
    lst = test_api.post("/lists", json={"name": "Fans"}).get_json()
    ids = [test_api.get(f"/contacts?email=l{i}@example.com").get_json()["data"][0]["id"] for i in (1, 2)]
    assert test_api.post(f"/lists/{lst['id']}/members", json={"contact_ids": ids}).status_code == 201
    b = created(test_api, audience_list_id=lst["id"])
    assert b["audience_list_id"] == lst["id"] and b["inline_recipients"] == 0
    test_api.post(f"/broadcasts/{b['id']}/send")
    fan_out(app, account, b["id"])
    assert sorted(m["to"][0]["email"] for m in messages_of(test_api, b["id"])) == ["l1@example.com", "l2@example.com"]

    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import unscoped
    with app.app_context(), unscoped():
        sent = [e.data for e in db.session.execute(select(Event).where(
            Event.organization_id == account["organization_id"], Event.type == "broadcast.sent")).scalars()]
        queued = db.session.execute(select(func.count()).select_from(Event).where(
            Event.organization_id == account["organization_id"], Event.type == "message.queued",
            Event.message_id.in_([m["id"] for m in messages_of(test_api, b["id"])]))).scalar()
    assert [d["broadcast_id"] for d in sent] == [b["id"]] and queued == 2


def test_fan_out_is_chunked_resumable_and_at_most_once(app, account, test_api, monkeypatch):
    from app.broadcasts import service
    from app.broadcasts.models import Broadcast
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import tenant_scope, unscoped

    emails = [f"c{i:02d}@example.com" for i in range(11)]
    subscribe(test_api, *emails)
    b = created(test_api, recipients=[{"email": e} for e in emails])
    test_api.post(f"/broadcasts/{b['id']}/send")
    monkeypatch.setitem(app.config, "BROADCAST_FANOUT_CHUNK", 4)
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        first = service.fan_out_chunk(b["id"])
        db.session.commit()
        assert first == {"written": 4, "queued": 4, "suppressed": 0}
        # A crash mid-chunk: the transaction rolls back and leaves nothing behind.
        service.fan_out_chunk(b["id"])
        db.session.rollback()
        assert db.session.execute(select(func.count()).select_from(Message)
                                  .where(Message.broadcast_id == b["id"])).scalar() == 4
        # Even with the cursor lost, a re-run cannot write a second message for anyone (unique index).
        db.session.execute(update(Broadcast).where(Broadcast.id == b["id"]).values(fanout_cursor=None))
        db.session.commit()
        again = service.fan_out_chunk(b["id"])
        db.session.commit()
        assert again == {"written": 0, "queued": 0, "suppressed": 0}
        # This "worker" dies here; its heartbeat goes stale, so the next job may take over.
        db.session.execute(update(Broadcast).where(Broadcast.id == b["id"]).values(
            fanout_heartbeat_at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=5)))
        db.session.commit()
    result = fan_out(app, account, b["id"])
    assert result["done"] and result["written"] == 7
    # A second job (e.g. the sweeper's) finds nothing to do.
    assert fan_out(app, account, b["id"]) == {"claimed": False}
    msgs = messages_of(test_api, b["id"])
    assert sorted(m["to"][0]["email"] for m in msgs) == emails
    assert test_api.get(f"/broadcasts/{b['id']}").get_json()["total_recipients"] == 11
    with app.app_context(), unscoped():
        assert db.session.get(Broadcast, b["id"]).status == "sent"


def test_parallel_chunks_write_everyone_once_even_when_the_first_is_lost(app, account, test_api, monkeypatch):
    """PostgreSQL writes several chunks at once (one connection each).  If the chunk that holds the lock is
    lost after its siblings committed, the cursor has not moved: the re-run writes it, finds the siblings'
    messages already there, and the totals are recounted at the end."""
    from app.broadcasts import service
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import tenant_scope

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("parallel chunks are PostgreSQL's (SQLite has one writer)")
    emails = [f"p{i:02d}@example.com" for i in range(11)]
    subscribe(test_api, *emails[:9])  # two without consent: suppressed
    b = created(test_api, recipients=[{"email": e} for e in emails])
    test_api.post(f"/broadcasts/{b['id']}/send")
    monkeypatch.setitem(app.config, "BROADCAST_FANOUT_CHUNK", 2)
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        first = service.fan_out_chunks(b["id"], 3)
        assert first == {"written": 6, "queued": first["queued"], "suppressed": 6 - first["queued"]}
        db.session.rollback()  # the first chunk and the cursor are lost; chunks 2 and 3 were committed
        written = db.session.execute(select(func.count()).select_from(Message)
                                     .where(Message.broadcast_id == b["id"])).scalar()
        assert written == 4
    monkeypatch.setitem(app.config, "BROADCAST_FANOUT_WRITERS", 3)
    result = fan_out(app, account, b["id"])
    assert result["done"] and result["written"] == 7
    msgs = messages_of(test_api, b["id"])
    assert sorted(m["to"][0]["email"] for m in msgs) == emails
    got = test_api.get(f"/broadcasts/{b['id']}").get_json()
    assert got["status"] == "sent"
    assert (got["total_recipients"], got["queued_count"], got["suppressed_count"]) == (11, 9, 2)


def test_cancel_while_sending_stops_the_fan_out(app, account, test_api, monkeypatch):
    from app.broadcasts import service
    from app.extensions import db
    from app.tenancy import tenant_scope

    emails = [f"x{i}@example.com" for i in range(6)]
    subscribe(test_api, *emails)
    b = created(test_api, recipients=[{"email": e} for e in emails])
    test_api.post(f"/broadcasts/{b['id']}/send")
    monkeypatch.setitem(app.config, "BROADCAST_FANOUT_CHUNK", 2)
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        service.fan_out_chunk(b["id"])
        db.session.commit()
    canceled = test_api.post(f"/broadcasts/{b['id']}/cancel")
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    assert canceled.get_json()["stats"]["canceled"] == 2
    assert fan_out(app, account, b["id"]) == {"claimed": False}
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        assert service.fan_out_chunk(b["id"]) is None
        db.session.rollback()
    msgs = messages_of(test_api, b["id"])
    assert len(msgs) == 2 and {m["status"] for m in msgs} == {"canceled"}
    detail = test_api.get(f"/messages/{msgs[0]['id']}").get_json()
    assert detail["events"][-1]["type"] == "message.canceled"
    dispatch(app)
    assert {m["status"] for m in messages_of(test_api, b["id"])} == {"canceled"}


# --- scheduling -------------------------------------------------------------------------------------------------

def test_schedule_in_a_time_zone_then_the_sweeper_starts_it(app, account, test_api):
    subscribe(test_api, "s@example.com")
    b = created(test_api, recipients=[{"email": "s@example.com"}])
    local = (datetime.now(timezone.utc) + timedelta(days=2)).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")).replace(tzinfo=None, microsecond=0)
    resp = test_api.post(f"/broadcasts/{b['id']}/schedule",
                         json={"scheduled_at": local.isoformat(), "timezone": "Asia/Tokyo"})
    assert resp.status_code == 200, resp.get_json()
    got = resp.get_json()
    assert got["status"] == "scheduled" and got["timezone"] == "Asia/Tokyo"
    expected = (local - timedelta(hours=9)).isoformat() + "Z"  # Tokyo is UTC+9, no DST
    assert got["scheduled_at"] == expected

    from app.broadcasts.models import Broadcast
    from app.broadcasts.tasks import start_scheduled_broadcast, sweep_broadcasts
    from app.extensions import db
    from app.tenancy import unscoped
    with app.app_context():  # the scheduler's job, early: nothing happens before the time
        assert start_scheduled_broadcast(b["id"], tenant=(account["organization_id"], "test")) is False
    with app.app_context(), unscoped():
        db.session.execute(update(Broadcast).where(Broadcast.id == b["id"]).values(
            scheduled_at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)))
        db.session.commit()
    with app.app_context():
        assert sweep_broadcasts()["started"] >= 1
    assert test_api.get(f"/broadcasts/{b['id']}").get_json()["status"] == "sending"
    fan_out(app, account, b["id"])
    assert test_api.get(f"/broadcasts/{b['id']}").get_json()["status"] == "sent"


@pytest.mark.parametrize("body,param", [
    ({"scheduled_at": "2001-01-01T09:00:00", "timezone": "Europe/Paris"}, "scheduled_at"),
    ({"scheduled_at": "2999-01-01T09:00:00", "timezone": "Mars/Olympus"}, "timezone"),
    ({"scheduled_at": "2999-01-01T09:00:00"}, "scheduled_at"),
    ({"scheduled_at": "tomorrow"}, "scheduled_at"),
    ({"timezone": "UTC"}, "scheduled_at"),
])
def test_schedule_validation(test_api, body, param):
    b = created(test_api, recipients=[{"email": "s@example.com"}])
    resp = test_api.post(f"/broadcasts/{b['id']}/schedule", json=body)
    assert_error(resp, 400, "invalid_request", param)
    assert test_api.get(f"/broadcasts/{b['id']}").get_json()["status"] == "draft"


def test_cancel_a_scheduled_broadcast(app, account, test_api):
    b = created(test_api, recipients=[{"email": "s@example.com"}])
    later = (datetime.now(timezone.utc) + timedelta(hours=3)).isoformat()
    assert test_api.post(f"/broadcasts/{b['id']}/schedule", json={"scheduled_at": later}).status_code == 200
    resp = test_api.post(f"/broadcasts/{b['id']}/cancel")
    assert resp.status_code == 200 and resp.get_json()["status"] == "canceled"
    assert resp.get_json()["canceled_at"]
    from app.broadcasts.tasks import start_scheduled_broadcast
    with app.app_context():
        assert start_scheduled_broadcast(b["id"], tenant=(account["organization_id"], "test")) is False
    assert messages_of(test_api, b["id"]) == []


# --- proofs and bulk --------------------------------------------------------------------------------------------

def test_proof_renders_samples_and_is_not_counted(app, test_api):
    tmpl = test_api.post("/templates", json={
        "name": "promo", "subject": "Deal for {{first_name}}", "html": "<p>{{first_name}}: {{discount}}</p>",
        "variables": [{"name": "discount", "sample": "20%"}]}).get_json()
    b = created(test_api, template_id=tmpl["id"], subject=None, html=None,
                recipients=[{"email": "real@example.com"}])
    resp = test_api.post(f"/broadcasts/{b['id']}/test", json={"recipients": ["QA@example.com", "boss@example.com"]})
    assert resp.status_code == 202, resp.get_json()
    proofs = resp.get_json()["data"]
    assert len(proofs) == 2 and all(p["status"] == "queued" for p in proofs)
    detail = test_api.get(f"/messages/{proofs[0]['id']}").get_json()
    assert detail["subject"] == "[Test] Deal for Ada" and "Ada: 20%" in detail["html"]
    assert detail["message_type"] == "transactional" and detail["broadcast_id"] is None
    assert detail["metadata"]["broadcast_id"] == b["id"]
    got = test_api.get(f"/broadcasts/{b['id']}").get_json()
    assert got["status"] == "draft" and got["stats"]["total"] == 0

    too_many = {"recipients": [f"p{i}@example.com" for i in range(6)]}
    assert_error(test_api.post(f"/broadcasts/{b['id']}/test", json=too_many), 400, "invalid_request", "recipients")
    assert_error(test_api.post(f"/broadcasts/{b['id']}/test", json={"recipients": []}), 400, "invalid_request",
                 "recipients")
    assert_error(test_api.post(f"/broadcasts/{b['id']}/test", json={"recipients": ["nope"]}), 400, "invalid_email",
                 "__any__")


def test_send_bulk_creates_and_sends(app, account, test_api):
    subscribe(test_api, "b1@example.com", "b2@example.com")
    resp = test_api.post("/send/bulk", json={
        "from_email": "hello@acme.example", "subject": "News", "body_html": "<h1>Hi {{first_name}}</h1>",
        "recipients": [{"email": "b1@example.com", "data": {"first_name": "Bea"}}, {"email": "b2@example.com"}]})
    assert resp.status_code == 202, resp.get_json()
    b = resp.get_json()
    assert b["status"] == "sending" and b["name"] == "Bulk send" and b["from_email"] == "hello@acme.example"
    assert b["sent_count"] == 0 and b["failed_count"] == 0
    fan_out(app, account, b["id"])
    dispatch(app)
    stats = test_api.get(f"/broadcasts/{b['id']}").get_json()["stats"]
    assert (stats["total"], stats["delivered"]) == (2, 2)

    assert_error(test_api.post("/send/bulk", json={"from_email": "hello@acme.example", "subject": "x",
                                                  "recipients": [{"email": "b1@example.com"}]}),
                 400, "invalid_request", "body_html")
    assert_error(test_api.post("/send/bulk", json={"from_email": "hello@acme.example", "subject": "x",
                                                  "body_html": "x"}), 400, "invalid_request", "audience_list_id")


# --- stats --------------------------------------------------------------------------------------------------------

def test_stats_count_opens_clicks_bounces_and_leave_machine_opens_and_clicks_out(app, account, test_api):
    addresses = ["opened@simulator.test", "clicked@simulator.test", "bounce@simulator.test",
                 "complaint@simulator.test", "delivered@simulator.test"]
    subscribe(test_api, *addresses)
    b = created(test_api, recipients=[{"email": a} for a in addresses])
    test_api.post(f"/broadcasts/{b['id']}/send")
    fan_out(app, account, b["id"])
    dispatch(app)
    msgs = {m["to"][0]["email"]: m["id"] for m in messages_of(test_api, b["id"])}

    from app.broadcasts.service import compute_stats
    from app.events.service import record_events
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "test"):
        record_events([
            {"type": "message.opened", "message_id": msgs["delivered@simulator.test"], "data": {"machine": True}},
            {"type": "message.opened", "message_id": msgs["opened@simulator.test"], "data": {"machine": False}},
            # A security scanner following the link of a message nobody clicked: not a click.
            {"type": "message.clicked", "message_id": msgs["delivered@simulator.test"],
             "data": {"machine": True, "url": "https://example.com/"}},
            {"type": "contact.unsubscribed", "message_id": msgs["delivered@simulator.test"], "data": {}}])
        db.session.commit()
        stats = compute_stats(b["id"])
    assert stats == {"total": 5, "queued": 0, "sent": 4, "delivered": 4, "opened": 2, "clicked": 1, "bounced": 1,
                     "complained": 1, "unsubscribed": 1, "failed": 0, "suppressed": 0, "canceled": 0}
