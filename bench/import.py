#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""CSV import of N generated contacts (default 1,000,000) next to a bare PostgreSQL COPY of the same file.

1. Creates the database postline_bench_import (dropped first if a previous run left it, dropped at the end)
   and migrates it; creates an organization.
2. Writes the CSV (email, first_name, last_name, phone_number, tags, consent_email, plan, city).
3. Times ``COPY contacts_bare FROM STDIN (FORMAT csv, HEADER)`` into an unindexed table of text columns.
4. Times the import job exactly as the worker runs it (``import_contacts_csv`` in-process: parse,
   validate, upsert in batches, progress per batch, events), first with contact events (the default), then
   — into a second organization — without them, to show what the events cost.
Usage: .venv/bin/python bench/import.py [-n ROWS] [--keep]
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "postline_bench_import"
PG = "postgresql://postgres@127.0.0.1:5432/"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def psql(sql: str, db: str = "postgres") -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                   check=True)


def write_csv(path: Path, n: int) -> None:
    rnd = random.Random(42)
    cities = ["Paris", "Lyon", "Berlin", "Austin", "Lagos", "Osaka", "Lima"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "first_name", "last_name", "phone_number", "tags", "consent_email", "plan", "city"])
        for i in range(n):
            phone = f"+1415{rnd.randrange(2000000, 9999999)}" if i % 10 == 0 else ""
            w.writerow([f"user{i}@example{i % 97}.com", f"First{i}", f"Last{i % 1000}", phone,
                        "news;beta" if i % 3 == 0 else "news", "yes" if i % 2 else "unknown",
                        rnd.choice(("free", "pro", "team")), rnd.choice(cities)])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--drop-index", action="append", default=[], metavar="NAME",
                    help="experiment: drop this index of the contacts table before importing (repeatable)")
    ap.add_argument("--no-events-run", action="store_true", help="skip the run without events")
    ap.add_argument("--no-floor", action="store_true", help="skip PostgreSQL's own INSERT … SELECT floor")
    ap.add_argument("--cprofile", metavar="FILE", help="cProfile the first import run (cumulative top 40)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    try:
        os.environ.update({"DATABASE_URL": PG + DB, "REDIS_URL": "redis://127.0.0.1:6379/13",
                           "REDIS_PREFIX": "bench-import:", "RQ_QUEUE_PREFIX": "bench-import-",
                           "POSTLINE_INSTANCE_PATH": str(tmp / "instance"), "LOG_LEVEL": "WARNING"})
        from flask_migrate import upgrade

        from app import create_app
        from app.accounts.service import create_account
        from app.bgjobs.service import create_job
        from app.extensions import db
        from app.imports.tasks import import_contacts_csv
        from app.tenancy import tenant_scope

        app = create_app()
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
        path = tmp / "contacts.csv"
        t = time.perf_counter()
        write_csv(path, args.n)
        log(f"CSV: {args.n:,} rows, {path.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s")

        psql("CREATE TABLE contacts_bare (email text, first_name text, last_name text, phone_number text, "
             "tags text, consent_email text, plan text, city text)", DB)
        t = time.perf_counter()
        with open(path, "rb") as fh:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qc",
                            "COPY contacts_bare FROM STDIN (FORMAT csv, HEADER)"], stdin=fh, check=True)
        copy_s = time.perf_counter() - t
        log(f"bare COPY: {copy_s:.2f} s ({args.n / copy_s:,.0f} rows/s)")

        for name in args.drop_index:
            psql(f"DROP INDEX IF EXISTS {name}", DB)
            log(f"dropped index {name}")
        results = {}
        runs = [("import (with events)", True)] + ([] if args.no_events_run else [("import (no events)", False)])
        for label, events in runs:
            with app.app_context():
                acct = create_account(f"Bench {label}", f"bench-{events}@example.com", "correct horse battery", "enterprise")
                db.session.commit()
                org = acct["organization_id"]
                from app.bgjobs.storage import storage
                with tenant_scope(org, "live"):
                    job = create_job("import", params={"update_existing": True, "events": events})
                    key = f"{org}/live/{job.id}/input.csv"
                    job.params = {**job.params, "input_key": key}
                    db.session.commit()
                    with open(path, "rb") as fh:
                        storage().save_stream(key, fh)
                    job_id = job.id
            profiler = None
            if args.cprofile and not results:
                import cProfile
                profiler = cProfile.Profile()
                profiler.enable()
            t = time.perf_counter()
            with app.app_context():
                counts = import_contacts_csv(job_id, tenant=(org, "live"))
            secs = time.perf_counter() - t
            if profiler is not None:
                import io
                import pstats
                profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
                Path(args.cprofile).write_text(out.getvalue())
            results[label] = secs
            log(f"{label}: {secs:.2f} s ({args.n / secs:,.0f} rows/s, {secs / copy_s:.1f}× COPY) counts={counts}")
        # The floor PostgreSQL itself needs to put these rows into the indexed contacts table, set-based from
        # the bare table (no Python, no network), rolled back.
        floor_sql = ("BEGIN; INSERT INTO contacts (id, organization_id, mode, email, phone_number, first_name, "
                     "last_name, attributes, tags, consent_email, consent_sms, metadata, created_at, updated_at) "
                     "SELECT 'con_' || left(md5(email), 20), 'org_floor', 'live', email, nullif(phone_number, ''), first_name, "
                     "last_name, jsonb_build_object('plan', plan, 'city', city), to_jsonb(string_to_array(tags, ';')), "
                     "CASE consent_email WHEN 'yes' THEN 'subscribed' ELSE 'unknown' END, 'unknown', '{}', now(), "
                     "now() FROM contacts_bare ON CONFLICT (organization_id, mode, email) DO NOTHING; ROLLBACK;")
        if not args.no_floor:
            t = time.perf_counter()
            psql(floor_sql, DB)
            floor = time.perf_counter() - t
            results["INSERT … SELECT from the bare table (PostgreSQL alone)"] = floor
            log(f"INSERT … SELECT into contacts from contacts_bare: {floor:.2f} s ({floor / copy_s:.1f}× COPY)")
        print()
        print("| rows | bare COPY | " + " | ".join(results) + " |")
        print(f"| {args.n:,} | {copy_s:.2f} s | "
              + " | ".join(f"{v:.1f} s ({v / copy_s:.1f}×)" for v in results.values()) + " |")
        with app.app_context():
            db.engine.dispose()
    finally:
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
