#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""Webhooks benchmark: events/s signed and delivered by TWO RQ workers to a local receiver, and the delay
from a message's `delivered` event to its webhook.

    .venv/bin/python bench/webhooks.py                 # 20,000 events, 2 workers, 2,000 messages for latency

Setup: a fresh PostgreSQL database (created + dropped), an empty Redis db number with unique prefixes,
migrations, an account, a test-mode endpoint (http:// to 127.0.0.1; ALLOW_PRIVATE_URLS=1) and a receiver
process (threaded HTTP/1.1, keep-alive) that verifies every signature with the `standardwebhooks`
library and notes when each `webhook-id` arrived.

1. Throughput: N test-mode messages are accepted with ``send_email_batch`` while no worker runs; the
   endpoint subscribes to ``message.queued``, so the accept path's listener writes N deliveries.  Then two
   ``worker.py default`` processes start; the clock runs from one ``dispatch_webhooks`` enqueue until no
   delivery is pending/sending (polled in SQL).  Result: events/s, with every signature verified.
2. Latency: the endpoint switches to ``message.delivered``; M messages to ``delivered@simulator.test`` are
   accepted in batches of 100 over a few seconds while two workers (``worker.py high default`` and
   ``worker.py default high``) deliver them (simulator) and send the webhooks.  Delay = receiver arrival − the event's ``occurred_at``.
Everything is stopped and removed at the end, even on Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

RECEIVER = r'''
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from standardwebhooks import Webhook

secret = Webhook(sys.argv[2])
seen, bad, lock = {}, [0], threading.Lock()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        now = time.time()
        try:
            secret.verify(body, dict(self.headers.items()), json_parse=False)
            ok = True
        except Exception:
            ok = False
        with lock:
            if ok:
                seen.setdefault(self.headers["webhook-id"], now)
            else:
                bad[0] += 1
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        with lock:
            data = json.dumps({"count": len(seen), "bad": bad[0], "seen": seen if self.path == "/dump" else {}})
        out = data.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass

class S(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def receiver_stats(port: int, dump: bool = False) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{'dump' if dump else 'stats'}", timeout=30) as resp:
        return json.loads(resp.read())


def message(i: int, to: str) -> dict:
    return {"from": "Bench <hello@bench.example.com>", "to": to, "subject": f"Receipt #{i}",
            "text": f"Thanks for order {i}.", "tags": ["receipt"], "metadata": {"order": str(i)}}


def pending(app) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.webhooks.models import WebhookDelivery
    with app.app_context():
        t = WebhookDelivery.__table__
        n = db.session.execute(select(func.count()).select_from(t).where(
            t.c.status.in_(("pending", "sending")))).scalar_one()
        db.session.rollback()
        return n


def wait_workers(app, n: int, timeout: float = 30) -> None:
    from rq import Worker

    from app.extensions import redis
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            if len(Worker.all(connection=redis.client)) >= n:
                return
            time.sleep(0.1)
    raise RuntimeError("workers did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--events", type=int, default=20_000)
    ap.add_argument("-m", "--latency-messages", type=int, default=2_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--redis-db", type=int, default=None)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    C.terminate_on_sigterm()
    run = C.Run("webhooks", C.ROOT / "bench" / "out" / time.strftime("webhooks-%Y%m%d-%H%M%S"))
    results: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": C.machine(),
                     "events": args.events, "workers": args.workers, "git": C.git_rev(),
                     "loadavg_at_start": os.getloadavg()[0]}
    C.log(f"machine: {results['machine']}; logs in {run.workdir}")
    try:
        database_url = run.create_database()
        redis_db = run.claim_redis_db(args.redis_db)
        env = run.app_env(database_url, redis_db, ALLOW_PRIVATE_URLS="1")
        account = run.migrate_and_create_account()
        C.apply_env(env)
        from app import create_app
        from app.extensions import db
        from app.jobs import queue
        from app.messages.service import send_email_batch
        from app.tenancy import tenant_scope
        from app.webhooks import service
        from app.webhooks.tasks import JOB_TIMEOUT, dispatch_webhooks

        app = create_app()
        org = account["organization_id"]
        port = C.free_port()
        with app.app_context(), tenant_scope(org, "test"):
            endpoint, secret = service.create_endpoint({"url": f"http://127.0.0.1:{port}/hook",
                                                        "events": ["message.queued"]})
            db.session.commit()
            endpoint_id = endpoint.id
        run.spawn("receiver", [C.PYTHON, "-c", RECEIVER, str(port), secret])
        C.wait_port(port)

        # --- 1. throughput -----------------------------------------------------------------------------
        C.log(f"accepting {args.events} test-mode messages (→ {args.events} message.queued deliveries)")
        with app.app_context(), tenant_scope(org, "test"):
            for start in range(0, args.events, 1000):
                send_email_batch([message(i, f"user{i}@example.org")
                                  for i in range(start, min(start + 1000, args.events))])
                db.session.commit()
            queue("default").empty()
            queue("high").empty()  # the email dispatcher's nudges: not this phase's subject
            # ... and their coalescing keys, or phase 2's sends (within the keys' 30 s) would nudge nobody.
            from app.delivery.tasks import DISPATCH_NUDGE
            from app.jobs import clear_nudge
            from app.webhooks.dispatch import NUDGE_KEY
            clear_nudge(DISPATCH_NUDGE)
            clear_nudge(NUDGE_KEY)
        assert pending(app) == args.events, pending(app)
        workers = [run.spawn(f"worker{n}", [C.PYTHON, "worker.py", "default", "--name", f"{run.tag}-w{n}"])
                   for n in range(args.workers)]
        wait_workers(app, args.workers)
        with app.app_context():
            started = time.perf_counter()
            queue("default").enqueue(dispatch_webhooks, job_timeout=JOB_TIMEOUT)
        while pending(app) and time.perf_counter() - started < args.timeout:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        stats = receiver_stats(port)
        results["throughput"] = {"delivered": stats["count"], "bad_signatures": stats["bad"],
                                 "seconds": round(elapsed, 2), "events_per_s": round(stats["count"] / elapsed)}
        C.log(f"throughput: {results['throughput']}")
        for w in workers:
            run.stop(w)
        # Phase 1's messages were only a source of events: take them out of the email dispatcher's way.
        from sqlalchemy import text
        with app.app_context():
            db.session.execute(text("UPDATE messages SET status = 'canceled' WHERE status IN ('queued', 'sending')"))
            db.session.commit()

        # --- 2. delivered → webhook delay -----------------------------------------------------------------
        with app.app_context(), tenant_scope(org, "test"):
            service.update_endpoint(endpoint_id, {"events": ["message.delivered"]})
            db.session.commit()
        # One worker prefers the email queue, the other the webhook queue: a long email dispatch loop (up to
        # 50 s) must not hold back webhooks (with both on `high default`, webhooks wait for it).
        orders = [["high", "default"], ["default", "high"]]
        workers = [run.spawn(f"lworker{n}", [C.PYTHON, "worker.py", *orders[n % 2], "--name", f"{run.tag}-l{n}"])
                   for n in range(args.workers)]
        wait_workers(app, args.workers)
        m = args.latency_messages
        C.log(f"latency: {m} messages to delivered@simulator.test, 100 every 0.1 s")
        with app.app_context(), tenant_scope(org, "test"):
            for start in range(0, m, 100):
                send_email_batch([message(i, "delivered@simulator.test") for i in range(start, start + 100)])
                db.session.commit()
                time.sleep(0.1)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if receiver_stats(port)["count"] >= args.events + m:
                break
            time.sleep(0.2)
        dump = receiver_stats(port, dump=True)["seen"]
        from sqlalchemy import select

        from app.events.models import Event
        with app.app_context():
            t = Event.__table__
            rows = db.session.execute(select(t.c.id, t.c.occurred_at).where(
                t.c.organization_id == org, t.c.type == "message.delivered")).all()
            db.session.rollback()
        delays = sorted((dump[r.id] - r.occurred_at.replace(tzinfo=timezone.utc).timestamp()) * 1000
                        for r in rows if r.id in dump)
        results["latency_ms"] = {"events": len(rows), "received": len(delays),
                                 "p50": round(C.percentile(delays, 50), 1) if delays else None,
                                 "p99": round(C.percentile(delays, 99), 1) if delays else None,
                                 "max": round(delays[-1], 1) if delays else None}
        C.log(f"delivered → webhook: {results['latency_ms']}")
    finally:
        run.close()
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
