"""Broadcasts end to end with a real worker process (worker.py, as the Procfile runs it): the API starts the
send, the worker fans out and delivers over real SMTP into the aiosmtpd sink — exactly once per recipient,
rendered per recipient — also when the worker is SIGKILLed mid-fan-out and started again (API.md 6)."""
from __future__ import annotations

import email
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from email import policy

import pytest
from sqlalchemy import func, insert, select, update

from tests.dns_server import dns_server, local_dns  # noqa: F401
from tests.integration.procs import ROOT, child_env, start, stop, wait_for
from tests.integration.test_delivery import SENDER_DOMAIN, mail  # noqa: F401
from tests.smtp_sink import _smtp_sink_server, smtp_sink  # noqa: F401

pytestmark = pytest.mark.slow

N = 1000


def _audience(app, account, mode="live", n=N) -> dict:
    """``n`` subscribed contacts in a static list, plus 5 suppressed and 5 without consent (also members)."""
    from app.contacts.models import Contact
    from app.extensions import db
    from app.ids import new_id
    from app.lists.models import ContactList, ListMember
    from app.suppressions.models import Suppression
    from app.tenancy import tenant_scope

    org = account["organization_id"]
    now = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=5)
    rows = []
    for i in range(n + 10):
        consent = "unknown" if i >= n + 5 else "subscribed"
        rows.append({"id": new_id("con"), "organization_id": org, "mode": mode, "email": f"user{i}@example.org",
                     "first_name": f"First{i}", "last_name": "Last", "attributes": {"n": i}, "tags": [],
                     "consent_email": consent, "consent_sms": "unknown", "metadata": {}, "created_at": now,
                     "updated_at": now})
    with app.app_context(), tenant_scope(org, mode):
        db.session.execute(insert(Contact.__table__), rows)
        lst = ContactList(name="Everyone", list_type="static", metadata_={})
        db.session.add(lst)
        db.session.flush()
        db.session.execute(insert(ListMember.__table__), [
            {"list_id": lst.id, "contact_id": r["id"], "organization_id": org, "mode": mode, "created_at": now}
            for r in rows])
        db.session.execute(insert(Suppression.__table__), [
            {"id": new_id("sup"), "organization_id": org, "mode": mode, "channel": "email",
             "recipient": f"user{i}@example.org", "reason": "manual", "created_at": now} for i in range(n, n + 5)])
        db.session.commit()
        return {"list_id": lst.id, "expected": {f"user{i}@example.org" for i in range(n)}}


def _broadcast(api, list_id: str) -> str:
    resp = api.post("/broadcasts", json={
        "name": "Big one", "from": f"Acme <news@{SENDER_DOMAIN}>", "subject": "Hello {{first_name}}",
        "html": "<p>Hi {{first_name}} {{last_name}}, you are number {{contact.attributes.n}}.</p>",
        "text": "Hi {{first_name}}, number {{contact.attributes.n}}. Unsubscribe: {{{unsubscribe_url}}}",
        "audience_list_id": list_id})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _worker_env(local_dns, mail, **extra):
    return child_env(DNS_RESOLVER=local_dns.address, SMTP_PORT_OVERRIDE=mail.port, **extra)


def _burst(env) -> subprocess.CompletedProcess:
    env = {**env, "LOG_LEVEL": "INFO"}  # the worker's job log, for the failure message
    try:
        done = subprocess.run([sys.executable, "worker.py", "--burst"], cwd=ROOT, env=env, timeout=240,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise AssertionError(f"burst worker still running after 240 s:\n{err[-4000:]}") from None
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _check_delivery(api, mail, broadcast_id: str, expected: set[str]):
    rcpts = Counter(r for m in mail.messages for r in m.rcpt_tos)
    assert set(rcpts) == expected, (len(rcpts), len(expected))
    assert max(rcpts.values()) == 1  # exactly once each
    for received in mail.messages[:: max(1, len(mail.messages) // 50)]:  # per-recipient rendering
        (address,) = received.rcpt_tos
        n = int(address.split("@")[0][4:])
        parsed = email.message_from_bytes(received.data, policy=policy.default)
        assert parsed["To"] == address and parsed["Subject"] == f"Hello First{n}"
        assert f"Hi First{n} Last, you are number {n}." in parsed.get_body(("html",)).get_content()
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/u/" in parsed.get_body(("plain",)).get_content()
    detail = api.get(f"/broadcasts/{broadcast_id}").get_json()
    assert detail["status"] == "sent"
    stats = detail["stats"]
    assert (stats["total"], stats["delivered"], stats["suppressed"], stats["queued"]) == (
        len(expected) + 10, len(expected), 10, 0), stats
    assert (detail["queued_count"], detail["suppressed_count"]) == (len(expected), 10)


def test_a_real_worker_delivers_a_1000_recipient_broadcast_once_each(app, account, api, mail, local_dns):
    audience = _audience(app, account)
    broadcast_id = _broadcast(api, audience["list_id"])
    assert api.post(f"/broadcasts/{broadcast_id}/send").status_code == 202
    _burst(_worker_env(local_dns, mail, BROADCAST_FANOUT_CHUNK=300))
    _check_delivery(api, mail, broadcast_id, audience["expected"])


def test_worker_killed_mid_fan_out_then_restarted_sends_each_once(app, account, api, mail, local_dns, tmp_path):
    from app.broadcasts.models import Broadcast
    from app.broadcasts.tasks import sweep_broadcasts
    from app.extensions import db
    from app.messages.models import Message
    from app.tenancy import unscoped

    audience = _audience(app, account)
    broadcast_id = _broadcast(api, audience["list_id"])
    assert api.post(f"/broadcasts/{broadcast_id}/send").status_code == 202

    def written() -> int:
        with app.app_context(), unscoped():
            count = db.session.execute(select(func.count()).select_from(Message)
                                       .where(Message.broadcast_id == broadcast_id)).scalar()
            db.session.rollback()
            return count

    env = _worker_env(local_dns, mail, BROADCAST_FANOUT_CHUNK=50, BROADCAST_FANOUT_PAUSE=0.15)
    log = tmp_path / "worker.log"
    worker = start([sys.executable, "worker.py"], env, log)
    try:
        wait_for(lambda: written() >= 200, timeout=60, interval=0.02, what="fan-out under way",
                 alive=[(worker, log)])
    finally:
        stop(worker, sig=signal.SIGKILL)
    at_kill = written()
    assert 200 <= at_kill < N + 10, at_kill
    assert mail.messages == []  # the worker was busy fanning out: nothing was delivered yet

    with app.app_context(), unscoped():
        b = db.session.get(Broadcast, broadcast_id)
        assert b.status == "sending" and b.fanout_cursor is not None
        # Time passes: the dead worker's heartbeat goes stale, and the cron sweeper re-enqueues the fan-out.
        db.session.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(
            fanout_heartbeat_at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=5)))
        db.session.commit()
    with app.app_context():
        assert sweep_broadcasts()["resumed"] == 1

    _burst(_worker_env(local_dns, mail, BROADCAST_FANOUT_CHUNK=50))
    assert written() == N + 10
    _check_delivery(api, mail, broadcast_id, audience["expected"])


def test_test_mode_broadcast_uses_the_simulator(app, account, test_api, mail, local_dns):
    audience = _audience(app, account, mode="test", n=20)
    resp = test_api.post("/broadcasts", json={"name": "t", "from": "news@anything.example", "subject": "S {{first_name}}",
                                              "text": "Hi", "audience_list_id": audience["list_id"]})
    broadcast_id = resp.get_json()["id"]
    assert test_api.post(f"/broadcasts/{broadcast_id}/send").status_code == 202
    _burst(_worker_env(local_dns, mail))
    assert mail.messages == []  # nothing left the machine
    stats = test_api.get(f"/broadcasts/{broadcast_id}").get_json()["stats"]
    assert (stats["total"], stats["delivered"], stats["suppressed"]) == (30, 20, 10)
