"""Email end to end: accepted by the API, delivered by the dispatcher over real SMTP into an aiosmtpd sink,
MX found through a local DNS server, DKIM-signed, and its fate recorded truthfully (API.md 3)."""
from __future__ import annotations

import base64
import email
import subprocess
import sys
from email import policy

import dkim
import pytest
from sqlalchemy import select, update

from tests.dns_server import dns_server, local_dns  # noqa: F401
from tests.helpers import assert_error
from tests.integration.procs import ROOT, child_env
from tests.smtp_sink import _smtp_sink_server, smtp_sink, tls_sink  # noqa: F401

SENDER_DOMAIN = "mail.acme-corp.com"
FROM = f"Acme <hello@{SENDER_DOMAIN}>"


@pytest.fixture
def mail(app, account, local_dns, smtp_sink):
    """A live account with a verified sending domain whose DKIM record is published, and example.org's MX
    pointing at the SMTP sink."""
    from app.domains.models import Domain
    from app.domains.service import create_domain
    from app.extensions import db
    from app.tenancy import tenant_scope

    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        domain = create_domain(SENDER_DOMAIN)
        db.session.flush()
        db.session.execute(update(Domain).where(Domain.id == domain.id).values(status="verified"))
        for record in domain.records:
            if record["purpose"] == "dkim":
                local_dns.add(record["name"], "TXT", record["value"])
        db.session.commit()
    for name in ("example.org", "example.net"):
        local_dns.add(name, "MX", f"10 mx.{name}.")
        local_dns.add(f"mx.{name}", "A", "127.0.0.1")
    dispatch(app)  # whatever earlier tests left queued (test mode: simulated), so counts below are ours
    smtp_sink.reset()
    return smtp_sink


def dispatch(app):
    from app.delivery.tasks import dispatch_email
    with app.app_context():
        return dispatch_email()


def dkim_verifies(data: bytes, dns) -> bool:
    from app.dnsutil import lookup, resolver

    def dnsfunc(name, timeout=5):
        found = lookup(name.decode().rstrip("."), "TXT", resolver(dns.address))
        return found[0].encode() if found else b""

    return dkim.verify(data, dnsfunc=dnsfunc)


def send(api, **body):
    body.setdefault("from", FROM)
    body.setdefault("subject", "Hello")
    body.setdefault("text", "Hi there")
    resp = api.post("/messages/email", json=body)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def test_delivered_signed_with_every_part_intact(app, api, mail, local_dns):
    pdf = b"%PDF-1.4 fake \x00\xff binary"
    msg = send(api, to=[{"email": "Ada@Example.org", "name": "Ada Lovelace"}], cc="bob@example.org",
               bcc=["carol@example.org", "dan@example.net"], html="<p>Hello <b>Ada</b> — ünïcode</p>",
               text="Hello Ada — ünïcode\n.leading dot line", headers={"X-Campaign": "spring"},
               attachments=[{"filename": "report.pdf", "content": base64.b64encode(pdf).decode(),
                             "content_type": "application/pdf"}], tags=["welcome"])
    assert msg["status"] == "queued" and msg["object"] == "message"

    counts = dispatch(app)
    assert counts == {"delivered": 4}
    by_rcpts = sorted(mail.messages, key=lambda m: len(m.rcpt_tos))
    assert len(by_rcpts) == 2  # one transaction per recipient domain
    assert by_rcpts[0].rcpt_tos == ["dan@example.net"]
    assert sorted(by_rcpts[1].rcpt_tos) == ["ada@example.org", "bob@example.org", "carol@example.org"]
    assert by_rcpts[0].mail_from.startswith("bounces+") and by_rcpts[0].mail_from.endswith(
        f"@pl-bounces.{SENDER_DOMAIN}")

    raw = by_rcpts[1].data
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, no bare LF
    assert dkim_verifies(raw, local_dns)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and b"carol@" not in raw
    assert parsed["To"] == "Ada Lovelace <ada@example.org>" and parsed["Cc"] == "bob@example.org"
    assert parsed["X-Campaign"] == "spring" and parsed["Message-ID"].endswith(f"@{SENDER_DOMAIN}>")
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == "Hello Ada — ünïcode\n.leading dot line"
    assert "ünïcode" in parsed.get_body(("html",)).get_content()
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "report.pdf" and attachment.get_content() == pdf

    detail = api.get(f"/messages/{msg['id']}").get_json()
    assert detail["status"] == "delivered"
    assert {r["status"] for r in detail["recipients"]} == {"delivered"}
    assert {r["type"] for r in detail["recipients"]} == {"to", "cc", "bcc"}
    assert len(detail["attempts"]) == 4
    assert all(a["status"] == "accepted" and a["smtp_code"] == 250 and a["mx_host"].startswith("mx.")
               for a in detail["attempts"])
    types = [e["type"] for e in detail["events"]]
    assert types[0] == "message.queued" and types.count("message.delivered") == 4
    assert detail["attachments"] == [{"filename": "report.pdf", "content_type": "application/pdf",
                                      "size": len(pdf)}]


def test_connections_are_reused_across_messages(app, api, mail):
    for i in range(5):
        send(api, to=f"user{i}@example.org")
    assert dispatch(app) == {"delivered": 5}
    assert len(mail.messages) == 5
    assert len({m.peer for m in mail.messages}) == 1  # one TCP connection (same client port) for all five


def test_hard_bounce_suppresses_and_next_send_is_suppressed(app, api, mail):
    mail.reply_rcpt["gone@example.org"] = "550 5.1.1 <gone@example.org>: Recipient address rejected"
    msg = send(api, to="gone@example.org")
    dispatch(app)
    detail = api.get(f"/messages/{msg['id']}").get_json()
    assert detail["status"] == "bounced"
    (attempt,) = detail["attempts"]
    assert (attempt["status"], attempt["smtp_code"], attempt["enhanced_code"]) == ("bounced", 550, "5.1.1")
    assert "Recipient address rejected" in attempt["smtp_response"]
    bounced = [e for e in detail["events"] if e["type"] == "message.bounced"]
    assert bounced and bounced[0]["data"]["bounce_type"] == "hard"

    sups = api.get("/suppressions?recipient=gone@example.org").get_json()["data"]
    assert [s["reason"] for s in sups] == ["bounce"]
    again = send(api, to="gone@example.org")
    assert again["status"] == "suppressed"
    dispatch(app)
    assert mail.messages == []


def test_policy_rejection_fails_without_suppressing(app, api, mail):
    mail.reply_rcpt["strict@example.org"] = "550 5.7.1 Message rejected by policy"
    msg = send(api, to="strict@example.org")
    dispatch(app)
    assert api.get(f"/messages/{msg['id']}").get_json()["status"] == "failed"
    assert api.get("/suppressions?recipient=strict@example.org").get_json()["data"] == []


def test_deferred_then_delivered_on_retry(app, api, mail):
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import unscoped

    mail.reply_data_queue.append("451 4.3.0 Temporary failure, try again")
    msg = send(api, to="later@example.org")
    dispatch(app)
    detail = api.get(f"/messages/{msg['id']}").get_json()
    assert detail["status"] == "queued" and mail.messages == []
    assert [a["status"] for a in detail["attempts"]] == ["deferred"]
    deferred = [e for e in detail["events"] if e["type"] == "message.deferred"]
    assert deferred and deferred[0]["data"]["next_attempt_at"]

    assert dispatch(app) == {}  # not due yet: the retry waits for its backoff
    with app.app_context(), unscoped():
        db.session.execute(update(Message).where(Message.id == msg["id"]).values(
            next_attempt_at=db.session.execute(select(Message.created_at).where(
                Message.id == msg["id"])).scalar_one()))
        db.session.commit()
    assert dispatch(app) == {"delivered": 1}
    detail = api.get(f"/messages/{msg['id']}").get_json()
    assert detail["status"] == "delivered"
    assert [a["status"] for a in detail["attempts"]] == ["deferred", "accepted"]
    assert len(mail.messages) == 1


def test_unreachable_domain_bounces_and_dead_host_defers(app, api, mail, local_dns):
    local_dns.add("nomail.example.org", "MX", "0 .")  # RFC 7505 null MX
    a = send(api, to="x@nomail.example.org")
    local_dns.add("down.example.org", "MX", "10 mx.down.example.org.")
    local_dns.add("mx.down.example.org", "A", "127.0.0.2")  # nothing listens there
    b = send(api, to="y@down.example.org")
    dispatch(app)
    assert api.get(f"/messages/{a['id']}").get_json()["status"] == "bounced"
    detail = api.get(f"/messages/{b['id']}").get_json()
    assert detail["status"] == "queued"
    assert detail["attempts"][0]["status"] == "deferred"


def test_live_send_from_unverified_domain_is_refused(api, mail):
    resp = api.post("/messages/email", json={"from": "x@not-ours.example", "to": "a@example.org",
                                             "subject": "s", "text": "t"})
    assert_error(resp, 422, "from_not_verified", "from")


def test_marketing_needs_consent_and_carries_one_click_unsubscribe(app, api, mail, local_dns, client):
    assert api.post("/contacts", json={"email": "fan@example.org", "consent": {"email": True}}).status_code == 201
    cold = send(api, to="cold@example.org", message_type="marketing")
    assert cold["status"] == "suppressed" and cold["status_reason"] == "no_consent"

    warm = send(api, to="fan@example.org", message_type="marketing")
    assert dispatch(app) == {"delivered": 1}
    (received,) = mail.messages
    assert dkim_verifies(received.data, local_dns)
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    signature = parsed["DKIM-Signature"].replace(" ", "").replace("\r\n", "")
    assert "list-unsubscribe:list-unsubscribe-post" in signature
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = parsed["List-Unsubscribe"].split("<")[1].split(">")[0]
    assert "mailto:" in parsed["List-Unsubscribe"]
    path = url.split("://", 1)[1].split("/", 1)[1]

    one_click = client.post("/" + path, data="List-Unsubscribe=One-Click",
                            content_type="application/x-www-form-urlencoded")
    assert one_click.status_code == 200
    contact = api.get("/contacts?email=fan@example.org").get_json()["data"][0]
    assert contact["consent"]["email"] == "unsubscribed"
    again = send(api, to="fan@example.org", message_type="marketing")
    assert again["status"] == "suppressed"
    assert api.get(f"/messages/{warm['id']}").get_json()["status"] == "delivered"


def test_scheduled_send_cancel_and_promotion(app, api, mail):
    from datetime import datetime, timedelta, timezone

    from app.delivery.tasks import promote_scheduled
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import unscoped

    later = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    a = send(api, to="a@example.org", send_at=later)
    b = send(api, to="b@example.org", send_at=later)
    assert a["status"] == "scheduled" and a["send_at"]
    canceled = api.post(f"/messages/{a['id']}/cancel")
    assert canceled.status_code == 200 and canceled.get_json()["status"] == "canceled"
    assert_error(api.post(f"/messages/{a['id']}/cancel"), 409, "message_not_cancelable")

    with app.app_context(), unscoped():
        db.session.execute(update(Message).where(Message.id == b["id"]).values(
            send_at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)))
        db.session.commit()
    with app.app_context():
        assert promote_scheduled() >= 1
    dispatch(app)
    assert api.get(f"/messages/{b['id']}").get_json()["status"] == "delivered"
    assert api.get(f"/messages/{a['id']}").get_json()["status"] == "canceled"
    assert [m.rcpt_tos for m in mail.messages] == [["b@example.org"]]
    assert_error(api.post(f"/messages/{b['id']}/cancel"), 409, "message_not_cancelable")


@pytest.mark.slow
def test_a_real_worker_process_delivers(app, api, mail, local_dns):
    """worker.py, as the Procfile runs it, picks up the nudge the API enqueued after commit."""
    msg = send(api, to="proc@example.org")
    done = subprocess.run([sys.executable, "worker.py", "--burst", "high"], cwd=ROOT, timeout=120,
                          env=child_env(DNS_RESOLVER=local_dns.address, SMTP_PORT_OVERRIDE=mail.port),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert api.get(f"/messages/{msg['id']}").get_json()["status"] == "delivered", done.stderr[-3000:]
    assert [m.rcpt_tos for m in mail.messages] == [["proc@example.org"]]


def test_mx_delivery_uses_starttls_when_offered(app, api, mail, tls_sink, monkeypatch):
    """Opportunistic TLS to MX hosts: the self-signed certificate is not a reason to send in plain text."""
    tls_sink.reset()
    monkeypatch.setitem(app.config, "SMTP_PORT_OVERRIDE", tls_sink.port)
    msg = send(api, to="secure@example.org")
    dispatch(app)
    assert api.get(f"/messages/{msg['id']}").get_json()["status"] == "delivered"
    (received,) = tls_sink.messages
    assert received.tls and received.login is None


def test_relay_with_tls_and_auth_marks_messages_sent(app, api, mail, tls_sink, monkeypatch):
    """Through SMTP_RELAY_URL the relay's acceptance is `sent`, not `delivered`: the relay delivers."""
    tls_sink.reset()
    monkeypatch.setenv("SSL_CERT_FILE", tls_sink.cert_path)  # the relay's certificate is verified
    monkeypatch.setitem(app.config, "SMTP_RELAY_URL", f"smtp://relay-user:relay-pass@127.0.0.1:{tls_sink.port}")
    msg = send(api, to="via-relay@example.com")
    dispatch(app)
    detail = api.get(f"/messages/{msg['id']}").get_json()
    assert detail["status"] == "sent"
    assert [e["type"] for e in detail["events"]] == ["message.queued", "message.sent"]
    (received,) = tls_sink.messages
    assert received.tls and received.login == "relay-user" and received.rcpt_tos == ["via-relay@example.com"]
    assert mail.messages == []

    monkeypatch.setitem(app.config, "SMTP_RELAY_URL", f"smtp://relay-user:wrong@127.0.0.1:{tls_sink.port}")
    refused = send(api, to="denied@example.com")
    dispatch(app)
    detail = api.get(f"/messages/{refused['id']}").get_json()
    assert detail["attempts"][0]["smtp_code"] == 535


def test_pipelined_envelope_keeps_each_recipients_answer(app, api, mail):
    """With PIPELINING the envelope goes in one write; each RCPT still gets its own verdict."""
    mail.reply_rcpt["nobody@example.org"] = "550 5.1.1 No such user"
    mail.reply_rcpt["full@example.org"] = "452 4.2.2 Mailbox full"
    msg = send(api, to=["ok@example.org", "nobody@example.org", "full@example.org"])
    dispatch(app)
    detail = api.get(f"/messages/{msg['id']}").get_json()
    statuses = {r["address"]: r["status"] for r in detail["recipients"]}
    assert statuses == {"ok@example.org": "delivered", "nobody@example.org": "bounced",
                        "full@example.org": "deferred"}
    assert detail["status"] == "queued"  # the deferred recipient is retried
    assert [m.rcpt_tos for m in mail.messages] == [["ok@example.org"]]


def test_a_message_that_cannot_be_signed_fails_alone(app, api, mail, monkeypatch):
    """A DKIM key no configured key decrypts fails its message, visibly; the batch goes on."""
    from app.domains import service as domains

    good = send(api, to="fine@example.org")
    calls = {"n": 0}
    real = domains.dkim_key

    def broken_once(domain):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("no key decrypts this")
        return real(domain)

    monkeypatch.setattr(domains, "dkim_key", broken_once)
    bad = send(api, to="unlucky@example.org")
    dispatch(app)
    statuses = {m["id"]: api.get(f"/messages/{m['id']}").get_json()["status"] for m in (good, bad)}
    assert sorted(statuses.values()) == ["delivered", "failed"]
    assert len(mail.messages) == 1


def test_small_batches_write_each_outcome_once(app, api, mail):
    """Each transaction writes one batch's outcome and claims the next: with batches of 2, five messages
    take three claims and every one is delivered and recorded exactly once."""
    from app.delivery.tasks import dispatch_email

    msgs = [send(api, to=f"batch{i}@example.org") for i in range(5)]
    with app.app_context():
        assert dispatch_email(batch_size=2) == {"delivered": 5}
    assert sorted(r for m in mail.messages for r in m.rcpt_tos) == sorted(f"batch{i}@example.org" for i in range(5))
    for m in msgs:
        detail = api.get(f"/messages/{m['id']}").get_json()
        assert detail["status"] == "delivered" and len(detail["attempts"]) == 1
        assert [e["type"] for e in detail["events"]].count("message.delivered") == 1


def test_inline_sending_and_deliver_by_ids_agree(app, api, mail, monkeypatch):
    """SENDER_LANES = 0 sends in the dispatcher's own thread; ``Deliverer.deliver`` takes ids already
    claimed.  Same outcome, same bookkeeping."""
    from app.delivery import service
    from app.extensions import db

    monkeypatch.setattr(service, "SENDER_LANES", 0)
    mail.reply_rcpt["gone2@example.org"] = "550 5.1.1 No such user"
    ok, gone = send(api, to="inline@example.org"), send(api, to="gone2@example.org")
    with app.app_context():
        ids = service.claim_due(10)
        assert set(ids) == {ok["id"], gone["id"]}
        deliverer = service.Deliverer()
        try:
            assert deliverer.deliver(ids) == {"delivered": 1, "bounced": 1}
        finally:
            deliverer.close()
        db.session.remove()
    assert api.get(f"/messages/{ok['id']}").get_json()["status"] == "delivered"
    detail = api.get(f"/messages/{gone['id']}").get_json()
    assert detail["status"] == "bounced" and detail["attempts"][0]["enhanced_code"] == "5.1.1"
    assert [m.rcpt_tos for m in mail.messages] == [["inline@example.org"]]


def test_every_recipient_refused_sends_no_content(app, api, mail):
    """With PIPELINING, DATA goes with the envelope; when every RCPT is refused the server refuses DATA
    too, and each recipient keeps its own answer."""
    mail.reply_rcpt["no1@example.org"] = "550 5.1.1 No such user"
    mail.reply_rcpt["no2@example.org"] = "451 4.3.0 Try later"
    msg = send(api, to=["no1@example.org", "no2@example.org"])
    dispatch(app)
    detail = api.get(f"/messages/{msg['id']}").get_json()
    assert {r["address"]: r["status"] for r in detail["recipients"]} == {"no1@example.org": "bounced",
                                                                          "no2@example.org": "deferred"}
    assert {a["recipient"]: (a["smtp_code"], a["enhanced_code"]) for a in detail["attempts"]} == {
        "no1@example.org": (550, "5.1.1"), "no2@example.org": (451, "4.3.0")}
    assert mail.messages == []
    # the connection is still usable for the next message
    assert send(api, to="after@example.org") and dispatch(app) == {"delivered": 1}
