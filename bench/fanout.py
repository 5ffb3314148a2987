#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""Broadcast fan-out benchmark: 1,000,000 contacts in a list → 1,000,000 message rows (+ recipients + events).

    .venv/bin/python bench/fanout.py                    # 1,000,000 contacts, chunks of 10,000
    .venv/bin/python bench/fanout.py -n 200000 --chunk 20000

Setup: a fresh PostgreSQL database (created + dropped), an empty Redis db number with unique prefixes,
migrations, an account and a verified sending domain.  N contacts are generated and loaded with COPY
(90 % consented, the rest `unknown`), 1 % of them suppressed, and all of them put in a static list with
COPY.  A marketing broadcast to that list is created and sent through ``app.broadcasts.service`` (no worker
runs, so nothing is delivered); then the fan-out job's own function (``run_fan_out``, exactly what the RQ
job runs) is timed in this process until the broadcast is `sent`.  Each statement kind is timed as well
(messages INSERT … SELECT, events INSERT … SELECT … RETURNING, recipients INSERT … SELECT), and the stats
query on the finished broadcast, cold and cached.  Everything is removed at the end, even on Ctrl-C.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def _copy(conn, table: str, columns: list[str], rows_text: str) -> float:
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT text)", io.StringIO(rows_text))
    conn.commit()
    return time.perf_counter() - started


def load_audience(database_url: str, org: str, n: int) -> tuple[str, dict]:
    """COPY N contacts, their list membership and 1 % suppressions; returns (list id, timings)."""
    import psycopg2

    from app.ids import new_id

    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    list_id = new_id("list")
    rng = random.Random(42)
    started = time.perf_counter()
    ids = [new_id("con") for _ in range(n)]
    contacts, members, suppressions = [], [], []
    for i, cid in enumerate(ids):
        consent = "subscribed" if rng.random() < 0.9 else "unknown"
        contacts.append(f"{cid}\t{org}\tlive\tuser{i}@example.org\tFirst{i}\tLast{i}\t"
                        f'{{"n": {i}, "plan": "{"pro" if i % 3 else "free"}"}}\t[]\t{consent}\tunknown\t{{}}\t{now}\t{now}\n')
        members.append(f"{list_id}\t{cid}\t{org}\tlive\t{now}\n")
        if i % 100 == 7:
            suppressions.append(f"{new_id('sup')}\t{org}\tlive\temail\tuser{i}@example.org\tmanual\t{now}\n")
    generated = time.perf_counter() - started
    conn = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    timings = {"generate_s": round(generated, 2)}
    with conn.cursor() as cur:
        cur.execute("INSERT INTO lists (id, organization_id, mode, name, list_type, metadata, created_at, updated_at) "
                    "VALUES (%s, %s, 'live', 'Everyone', 'static', '{}', now(), now())", (list_id, org))
    conn.commit()
    timings["copy_contacts_s"] = round(_copy(conn, "contacts", [
        "id", "organization_id", "mode", "email", "first_name", "last_name", "attributes", "tags", "consent_email",
        "consent_sms", "metadata", "created_at", "updated_at"], "".join(contacts)), 2)
    timings["copy_list_members_s"] = round(_copy(conn, "list_members", [
        "list_id", "contact_id", "organization_id", "mode", "created_at"], "".join(members)), 2)
    timings["copy_suppressions_s"] = round(_copy(conn, "suppressions", [
        "id", "organization_id", "mode", "channel", "recipient", "reason", "created_at"], "".join(suppressions)), 2)
    with conn.cursor() as cur:
        cur.execute("ANALYZE contacts; ANALYZE list_members; ANALYZE suppressions; ANALYZE messages; ANALYZE events")
    conn.commit()
    conn.close()
    timings["suppressed"] = len(suppressions)
    return list_id, timings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--contacts", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=10_000, help="contacts per fan-out chunk (default 10,000)")
    ap.add_argument("--redis-db", type=int, default=None)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--explain-at", type=int, default=None, metavar="K",
                    help="instead of timing: write K chunks, then EXPLAIN (ANALYZE, BUFFERS, WAL) the next chunk's "
                         "write statement (rolled back) into plan.txt, its SQL into chunk.sql, and stop")
    ap.add_argument("--keep", action="store_true", help="keep the database (drop it yourself)")
    ap.add_argument("--cprofile", action="store_true", help="run the fan-out under cProfile (cprofile.txt)")
    args = ap.parse_args()

    C.terminate_on_sigterm()
    run = C.Run("fanout", C.ROOT / "bench" / "out" / time.strftime("fanout-%Y%m%d-%H%M%S"))
    results: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": C.machine(),
                     "contacts": args.contacts, "chunk": args.chunk, "git": C.git_rev(),
                     "loadavg_at_start": os.getloadavg()[0]}
    C.log(f"machine: {results['machine']}; logs in {run.workdir}")
    try:
        database_url = run.create_database()
        redis_db = run.claim_redis_db(args.redis_db)
        env = run.app_env(database_url, redis_db, BROADCAST_FANOUT_CHUNK=str(args.chunk))
        account = run.migrate_and_create_account()
        C.apply_env(env)
        from sqlalchemy import event, func, select, text

        from app import create_app
        from app.broadcasts import service
        from app.extensions import db
        from app.messages.models import Message, MessageRecipient
        from app.events.models import Event
        from app.tenancy import tenant_scope, unscoped

        app = create_app()
        org = account["organization_id"]
        C.setup_sender_domain(app, org, "mail.bench-fanout.example")
        C.log(f"generating and COPYing {args.contacts:,} contacts, their list membership and 1 % suppressions")
        with app.app_context():
            list_id, load = load_audience(app.config["SQLALCHEMY_DATABASE_URI"], org, args.contacts)
        results["load"] = load
        C.log(f"loaded: {load}")

        with app.app_context(), tenant_scope(org, "live"):
            b = service.create_broadcast({
                "name": "Bench", "from_": {"email": "news@mail.bench-fanout.example", "name": "Bench"},
                "subject": "Hi {{first_name}}", "html": "<p>Hello {{first_name}} {{contact.attributes.plan}}</p>",
                "audience_list_id": list_id, "message_type": "marketing"})
            service.send_broadcast(b.id)
            db.session.commit()
            broadcast_id = b.id

        per_kind: dict[str, list[float]] = defaultdict(list)

        def kind(statement: str) -> str | None:
            head = statement.lstrip()[:40].upper()
            if head.startswith(("WITH INSERTED", "WITH WIN")):  # PostgreSQL: messages + recipients + events, one statement
                return "chunk_write"
            for k in ("INSERT INTO MESSAGES", "INSERT INTO EVENTS", "INSERT INTO MESSAGE_RECIPIENTS"):
                if head.startswith(k):
                    return k.split()[-1].lower()
            if head.startswith("SELECT MAX("):
                return "chunk_bound"
            return None

        if args.explain_at is not None:
            explain_chunk(app, org, broadcast_id, args.explain_at, run.workdir)
            return 0

        with app.app_context():
            engine = db.engine

            @event.listens_for(engine, "before_cursor_execute")
            def _before(conn, cursor, statement, params, context, executemany):
                conn.info["bench_t"] = time.perf_counter()

            @event.listens_for(engine, "after_cursor_execute")
            def _after(conn, cursor, statement, params, context, executemany):
                k = kind(statement)
                if k:
                    per_kind[k].append(time.perf_counter() - conn.info.pop("bench_t", time.perf_counter()))

            C.log(f"fan-out of {broadcast_id} to {args.contacts:,} contacts in chunks of {args.chunk:,}")
            wal_before = db.session.execute(text("SELECT pg_current_wal_lsn()")).scalar()
            db.session.commit()
            started = time.perf_counter()
            totals = {"written": 0, "queued": 0, "suppressed": 0, "chunks": 0}
            profiler = None
            if args.cprofile:
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            while True:
                with tenant_scope(org, "live"):
                    got = service.run_fan_out(broadcast_id, budget=10_000.0, pause=0.0)
                for key in totals:
                    totals[key] += got.get(key, 0)
                if got.get("done") or not got.get("continued"):
                    break
            elapsed = time.perf_counter() - started
            if profiler is not None:
                import pstats
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
                (run.workdir / "cprofile.txt").write_text(out.getvalue())
            wal_bytes = db.session.execute(text("SELECT pg_current_wal_lsn() - CAST(:lsn AS pg_lsn)"),
                                           {"lsn": wal_before}).scalar()
            db.session.commit()
            event.remove(engine, "before_cursor_execute", _before)
            event.remove(engine, "after_cursor_execute", _after)

            with unscoped():
                counts = {
                    "messages": db.session.execute(select(func.count()).select_from(Message)
                                                   .where(Message.broadcast_id == broadcast_id)).scalar(),
                    "recipients": db.session.execute(select(func.count()).select_from(MessageRecipient).where(
                        MessageRecipient.organization_id == org)).scalar(),
                    "events": db.session.execute(select(func.count()).select_from(Event).where(
                        Event.organization_id == org, Event.type.in_(("message.queued", "message.suppressed"))))
                    .scalar(),
                }
                status = db.session.execute(select(service.Broadcast.status).where(
                    service.Broadcast.id == broadcast_id)).scalar()
            pg_settings = {name: db.session.execute(text(f"SHOW {name}")).scalar()
                           for name in ("shared_buffers", "max_wal_size", "synchronous_commit")}
            t0 = time.perf_counter()
            with tenant_scope(org, "live"):
                stats = service.compute_stats(broadcast_id)
            stats_cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            with tenant_scope(org, "live"):
                service.compute_stats(broadcast_id)
            stats_warm = time.perf_counter() - t0
            with tenant_scope(org, "live"):
                b = db.session.get(service.Broadcast, broadcast_id)
                service.broadcast_stats(b)
                t0 = time.perf_counter()
                service.broadcast_stats(b)
                stats_cached = time.perf_counter() - t0
            db.session.rollback()

        results.update({
            "broadcast_status": status, "fanout_s": round(elapsed, 2), "wal_mb": round(int(wal_bytes) / 2**20),
            "pg_settings": pg_settings,
            "messages_per_s": round(counts["messages"] / elapsed), "totals": totals, "counts": counts,
            "statements_s": {k: {"total": round(sum(v), 2), "per_chunk_ms": round(1000 * sum(v) / max(len(v), 1), 1)}
                             for k, v in per_kind.items()},
            "stats": stats, "stats_query_ms": {"cold": round(stats_cold * 1000), "warm": round(stats_warm * 1000),
                                               "cached": round(stats_cached * 1000, 2)},
        })
        ok = (status == "sent" and counts["messages"] == args.contacts and counts["recipients"] == args.contacts
              and counts["events"] == args.contacts)
        results["ok"] = ok
        C.log(f"fan-out: {elapsed:.1f} s = {results['messages_per_s']:,} messages/s; counts {counts}; status {status}; "
              f"WAL {results['wal_mb']:,} MB; {pg_settings}")
        C.log(f"per statement: {results['statements_s']}")
        C.log(f"stats: {stats}; query cold {results['stats_query_ms']}")
        print(json.dumps(results, indent=2))
        (run.workdir / "results.json").write_text(json.dumps(results, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0 if ok else 1
    finally:
        if args.keep and run.db_name:
            C.log(f"kept database {run.db_name} (--keep): DROP DATABASE it when done")
            run.db_name = None
        run.close()


def explain_chunk(app, org: str, broadcast_id: str, k: int, workdir: Path) -> None:
    """K chunks written and committed, then the next one's write statement captured (rolled back) and
    EXPLAINed with ANALYZE, BUFFERS and WAL in a transaction that is rolled back too."""
    from sqlalchemy import event, text

    from app.broadcasts import service
    from app.extensions import db
    from app.tenancy import tenant_scope

    with app.app_context(), tenant_scope(org, "live"):
        service.claim_fan_out(broadcast_id)
        for _ in range(k):
            service.fan_out_chunk(broadcast_id)
            db.session.commit()
        captured: list[str] = []

        def _before(conn, cursor, statement, params, context, executemany):
            if statement.lstrip()[:40].upper().startswith(("WITH INSERTED", "WITH WIN")):
                captured.append(cursor.mogrify(statement, params).decode())

        event.listen(db.engine, "before_cursor_execute", _before)
        started = time.perf_counter()
        service.fan_out_chunk(broadcast_id)
        C.log(f"chunk {k + 1} (rolled back): {time.perf_counter() - started:.2f} s")
        db.session.rollback()
        event.remove(db.engine, "before_cursor_execute", _before)
        sql = captured[-1]
        (workdir / "chunk.sql").write_text(sql + ";\n")
        db.session.execute(text("SET LOCAL synchronous_commit = off"))
        plan = db.session.execute(text("EXPLAIN (ANALYZE, BUFFERS, WAL, VERBOSE) " + sql.replace("%", "%%"))).scalars()
        plan = "\n".join(plan)
        db.session.rollback()
    (workdir / "plan.txt").write_text(plan + "\n")
    print(plan)


if __name__ == "__main__":
    sys.exit(main())
