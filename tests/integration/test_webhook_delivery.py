"""End to end: an email sent with the test key produces message.queued / sent / delivered webhooks, signed
and verified by the `standardwebhooks` library; a live-mode endpoint over HTTPS (self-signed receiver);
the dispatcher job coalesces work and runs on RQ."""
from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from tests.api.test_webhooks import Receiver, _no_leftover_deliveries, create, run_dispatcher  # noqa: F401

FROM = "Acme <hello@acme.example>"


def send_email(api, to, **extra):
    resp = api.post("/messages/email", json={"from": FROM, "to": to, "subject": "Hi", "text": "Hello", **extra})
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def test_test_mode_send_produces_signed_message_webhooks(app, test_api):
    receiver = Receiver()
    try:
        wh = create(test_api, receiver.url, events=["message.*"])
        msg = send_email(test_api, "delivered@simulator.test", tags=["welcome"], metadata={"order": "42"})
        from app.delivery.tasks import dispatch_email
        with app.app_context():
            dispatch_email()
        totals = run_dispatcher(app)
        assert totals["succeeded"] == 3, totals
        secret = Webhook(wh["signing_secret"])
        payloads = [secret.verify(r["body"], r["headers"]) for r in receiver.requests]
        by_type = {p["type"]: p for p in payloads}
        assert set(by_type) == {"message.queued", "message.sent", "message.delivered"}
        for type_, payload in by_type.items():
            data = payload["data"]
            assert data["message_id"] == msg["id"] and data["channel"] == "email"
            assert data["recipient"] == "delivered@simulator.test"
            assert data["tags"] == ["welcome"] and data["metadata"] == {"order": "42"}
            assert data["status"] == type_.split(".")[1]
            assert payload["id"].startswith("evt_") and payload["created_at"].endswith("Z")
        # The message timeline's event ids are the webhook ids.
        timeline = test_api.get(f"/messages/{msg['id']}").get_json()["events"]
        assert {e["id"] for e in timeline} == {p["id"] for p in payloads}
        deliveries = test_api.get(f"/webhooks/{wh['id']}/deliveries").get_json()["data"]
        assert sorted(d["event_type"] for d in deliveries) == sorted(by_type)
        assert {d["status"] for d in deliveries} == {"succeeded"}
    finally:
        receiver.close()


def test_a_batch_of_events_makes_one_insert_and_one_nudge(app, test_api, account):
    """The listener is set-based: a 50-message batch fans out without a job per event."""
    receiver = Receiver()
    try:
        create(test_api, receiver.url, events=["message.queued"])
        from app.extensions import redis
        from app.jobs import queue
        with app.app_context():
            q = queue("default")
            before = q.count
        resp = test_api.post("/messages/batch", json={"items": [
            {"from": FROM, "to": f"user{i}@simulator.test", "subject": "Hi", "text": "x"} for i in range(50)]})
        assert resp.status_code in (200, 202), resp.get_json()
        with app.app_context():
            assert q.count - before <= 1  # one coalesced nudge
            redis.client.delete(redis.key("nudge", "dispatch-webhooks"))
        assert run_dispatcher(app)["succeeded"] == 50
        assert len({json.loads(r["body"])["data"]["message_id"] for r in receiver.requests}) == 50
    finally:
        receiver.close()


def test_dispatcher_runs_from_the_rq_queue(app, test_api, account):
    """The nudge enqueued after commit is a real RQ job that a worker runs."""
    from rq import SimpleWorker

    from app.extensions import redis
    from app.jobs import queue
    from tests.api.test_webhooks import emit
    receiver = Receiver()
    try:
        create(test_api, receiver.url)
        with app.app_context():
            redis.client.delete(redis.key("nudge", "dispatch-webhooks"))
            q = queue("default")
            q.empty()
        emit(app, account, "domain.verified", data={"domain": "rq.example"})
        with app.app_context():
            assert q.count == 1
            SimpleWorker([q], connection=redis.client).work(burst=True)
        assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["domain.verified"]
    finally:
        receiver.close()


# --- live mode over HTTPS -----------------------------------------------------------------------------------

def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_receiver(tmp_path):
    cert, key = _self_signed(tmp_path)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"headers": dict(self.headers.items()), "body": body,
                         "sni": getattr(self.connection, "server_hostname", None)})
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"port": server.server_port, "seen": seen, "cert": cert}
    server.shutdown()
    server.server_close()


def test_live_mode_endpoint_over_https(app, api, account, tls_receiver, monkeypatch):
    from app.webhooks import dispatch
    from tests.api.test_webhooks import emit

    # Trust the receiver's self-signed certificate (the guard still checks it against the URL's host).
    client = dispatch.ssrf.Client()
    client._context = ssl.create_default_context(cafile=tls_receiver["cert"])
    monkeypatch.setattr(dispatch, "_client", client)
    wh = create(api, f"https://localhost:{tls_receiver['port']}/hook")
    emit(app, account, "domain.verified", mode="live", data={"domain": "live.example"})
    assert run_dispatcher(app)["succeeded"] == 1
    [request] = tls_receiver["seen"]
    payload = Webhook(wh["signing_secret"]).verify(request["body"], request["headers"])
    assert payload["type"] == "domain.verified"
    assert request["headers"]["Host"] == f"localhost:{tls_receiver['port']}"
    # A certificate that does not match the host fails the attempt (connection pinned to the IP, name checked).
    wh2 = create(api, f"https://127.0.0.1:{tls_receiver['port']}/hook")
    body = api.post(f"/webhooks/{wh2['id']}/test").get_json()
    assert body["status"] == "failed" and body["attempts"][0]["error"].startswith("TLS failed"), body
    assert len(tls_receiver["seen"]) == 1
