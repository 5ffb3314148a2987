#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""Audience benchmark: 1,000,000 contacts — dynamic-list counts, and GET /contacts page 5,000 vs page 1.

    .venv/bin/python bench/audience.py                 # 1,000,000 contacts, ~1.3 M events
    .venv/bin/python bench/audience.py -n 200000 --repeat 9

Setup: a fresh PostgreSQL database (created, then dropped at the end even on Ctrl-C), migrations, an
enterprise account with its rate limit lifted.  N contacts are generated (emails on four domains, 50 first
and 50 last names, 0–3 tags of six, attributes {plan, mrr, country, signup_source}, consents, 40 % scored
with a churn risk band, created over two years) and loaded with COPY, with their events (logins and message
opens over the last 90 days for a third of them).  Then ANALYZE.

Measured, in this process (app context, the same code the API runs):
1. ``app.lists.service.count_segment`` for realistic segments (the dynamic list's ``member_count`` and the
   rule builder's live count): median and worst of ``--repeat`` warm runs, plus the first (cold) run.
   Target: < 500 ms.
2. ``GET /api/v1/contacts`` through the Flask test client with a live key: page 1 vs page 5,000
   (``starting_after`` = the 100,000th contact at limit 20), unfiltered and with filters (``tag``,
   ``consent[email]``, ``attributes[plan]``, ``risk``, ``list_id`` of a dynamic list, ``q``).
   Target: page 5,000 ≤ 1.5 × page 1.
3. ``GET /api/v1/lists`` with six dynamic lists (their counts in one pass over the contacts), two of them
   with event-count conditions.
EXPLAIN (ANALYZE) plans of the segment counts go to bench/out/audience-<time>/plans.txt.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DOMAINS = ["gmail.com", "example.org", "yahoo.com", "corp.io"]
FIRST = ["Ada", "Alan", "Grace", "Linus", "Ken", "Barbara", "Donald", "Edsger", "Frances", "John", "Margaret",
         "Dennis", "Bjarne", "Guido", "James", "Katherine", "Radia", "Tim", "Vint", "Whitfield", "Adele", "Sophie",
         "Hedy", "Jean", "Mary", "Anita", "Lynn", "Shafi", "Silvio", "Leslie", "Niklaus", "Tony", "Robin", "Peter",
         "Butler", "Ivan", "Fran", "Marvin", "Seymour", "Alonzo", "Kurt", "Claude", "Norbert", "Herbert", "Allen",
         "Edward", "Judea", "Yann", "Geoffrey", "Yoshua"]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Thompson", "Liskov", "Knuth", "Dijkstra", "Allen", "Backus",
        "Hamilton", "Ritchie", "Stroustrup", "Rossum", "Gosling", "Johnson", "Perlman", "Berners", "Cerf", "Diffie",
        "Goldberg", "Wilson", "Lamarr", "Sammet", "Keller", "Borg", "Conway", "Goldwasser", "Micali", "Lamport",
        "Wirth", "Hoare", "Milner", "Naur", "Lampson", "Sutherland", "Corbato", "Minsky", "Papert", "Church",
        "Godel", "Shannon", "Wiener", "Simon", "Newell", "Feigenbaum", "Pearl", "LeCun", "Hinton", "Bengio"]
TAGS = ["beta", "vip", "newsletter", "trial", "churned", "partner"]
TAG_WEIGHTS = [0.10, 0.05, 0.45, 0.20, 0.08, 0.02]
PLANS = [("free", 0.5), ("pro", 0.3), ("growth", 0.15), ("enterprise", 0.05)]
COUNTRIES = ["US", "GB", "FR", "DE", "JP", "BR", "IN", "CA"]

SEGMENTS = {
    "tags: beta (short form)": {"tags": ["beta"]},
    "attributes: plan=pro (short form)": {"attributes": {"plan": "pro"}},
    "pro plan, email opt-in, mrr >= 500": {"match": "all", "conditions": [
        {"field": "attributes.plan", "op": "eq", "value": "pro"},
        {"field": "consent.email", "op": "eq", "value": "subscribed"},
        {"field": "attributes.mrr", "op": "gte", "value": 500}]},
    "new vips: created in 30 d and tag vip": {"match": "all", "conditions": [
        {"field": "created_at", "op": "gte", "value": "-30d"},
        {"field": "tags", "op": "contains", "value": "vip"}]},
    "at risk: risk high or >= 3 logins in 30 d": {"match": "any", "conditions": [
        {"field": "risk", "op": "eq", "value": "high"},
        {"field": "events.login.count_30d", "op": "gte", "value": 3}]},
    "subscribed but no open in 30 d": {"match": "all", "conditions": [
        {"field": "consent.email", "op": "eq", "value": "subscribed"},
        {"field": "events.message.opened.count_30d", "op": "eq", "value": 0}]},
    "gmail, not churned, score < 40": {"match": "all", "conditions": [
        {"field": "email", "op": "contains", "value": "@gmail.com"},
        {"field": "tags", "op": "neq", "value": "churned"},
        {"field": "score", "op": "lt", "value": 40}]},
}


def _copy(conn, table: str, columns: list[str], buf: io.StringIO) -> float:
    started = time.perf_counter()
    buf.seek(0)
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT text)", buf)
    conn.commit()
    return time.perf_counter() - started


def load(database_url: str, org: str, n: int) -> dict:
    """Generate and COPY N contacts and their events; returns timings and counts."""
    import psycopg2

    from app.ids import new_id

    rng = random.Random(20261123)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    start = now - timedelta(days=730)
    step = (now - start).total_seconds() / n
    started = time.perf_counter()
    contacts, events = io.StringIO(), io.StringIO()
    n_events = 0
    plan_names = [p for p, _ in PLANS]
    plan_weights = [w for _, w in PLANS]
    for i in range(n):
        cid = new_id("con")
        created = (start + timedelta(seconds=i * step + rng.random() * step)).isoformat(sep=" ")
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower()}{i}@{DOMAINS[i % 4]}"
        tags = [t for t, w in zip(TAGS, TAG_WEIGHTS) if rng.random() < w]
        plan = rng.choices(plan_names, plan_weights)[0]
        mrr = {"free": 0, "pro": rng.randrange(50, 1000), "growth": rng.randrange(500, 5000),
               "enterprise": rng.randrange(5000, 50000)}[plan]
        attrs = json.dumps({"plan": plan, "mrr": mrr, "country": rng.choice(COUNTRIES),
                            "signup_source": rng.choice(["ads", "organic", "referral"])})
        consent_email = rng.choices(["subscribed", "unsubscribed", "unknown"], [0.6, 0.15, 0.25])[0]
        consent_sms = rng.choices(["subscribed", "unsubscribed", "unknown"], [0.2, 0.1, 0.7])[0]
        if rng.random() < 0.4:
            score = rng.randrange(0, 101)
            risk = "low" if score < 34 else ("medium" if score < 67 else "high")
            score_s, risk_s = str(score), risk
        else:
            score_s = risk_s = "\\N"
        contacts.write(f"{cid}\t{org}\tlive\t{email}\t{first}\t{last}\t{attrs}\t{json.dumps(tags)}\t"
                       f"{consent_email}\t{consent_sms}\t{{}}\t{created}\t{created}\t{risk_s}\t{score_s}\n")
        if i % 3 == 0:  # a third are active: logins and opens over the last 90 days
            for _ in range(rng.randrange(0, 8)):
                at = (now - timedelta(seconds=rng.randrange(0, 90 * 86400))).isoformat(sep=" ")
                n_events += 1
                events.write(f"evt_b{n_events:018d}\t{org}\tlive\tlogin\t{cid}\t{{}}\t{at}\n")
            for _ in range(rng.randrange(0, 4)):
                at = (now - timedelta(seconds=rng.randrange(0, 90 * 86400))).isoformat(sep=" ")
                n_events += 1
                events.write(f"evt_b{n_events:018d}\t{org}\tlive\tmessage.opened\t{cid}\t{{}}\t{at}\n")
    timings = {"generate_s": round(time.perf_counter() - started, 1), "events": n_events}
    conn = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    timings["copy_contacts_s"] = round(_copy(conn, "contacts", [
        "id", "organization_id", "mode", "email", "first_name", "last_name", "attributes", "tags", "consent_email",
        "consent_sms", "metadata", "created_at", "updated_at", "risk", "score"], contacts), 1)
    timings["copy_events_s"] = round(_copy(conn, "events", [
        "id", "organization_id", "mode", "type", "contact_id", "data", "occurred_at"], events), 1)
    started = time.perf_counter()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE contacts")
        cur.execute("VACUUM ANALYZE events")
    timings["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
    conn.close()
    return timings


def timed(fn, repeat: int) -> dict:
    t0 = time.perf_counter()
    value = fn()
    cold = time.perf_counter() - t0
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"value": value, "cold_ms": round(cold * 1000, 1), "median_ms": round(statistics.median(runs) * 1000, 1),
            "max_ms": round(max(runs) * 1000, 1)}


def timed_pair(fn_a, fn_b, repeat: int) -> tuple[dict, dict]:
    """Like :func:`timed` for two functions, run alternately."""
    out = []
    runs: tuple[list, list] = ([], [])
    colds = []
    for fn in (fn_a, fn_b):
        t0 = time.perf_counter()
        fn()
        colds.append(time.perf_counter() - t0)
    for _ in range(repeat):
        for i, fn in enumerate((fn_a, fn_b)):
            t0 = time.perf_counter()
            fn()
            runs[i].append(time.perf_counter() - t0)
    for i in range(2):
        out.append({"cold_ms": round(colds[i] * 1000, 1), "median_ms": round(statistics.median(runs[i]) * 1000, 1),
                    "max_ms": round(max(runs[i]) * 1000, 1)})
    return out[0], out[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--contacts", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7, help="warm runs per measurement (default 7)")
    ap.add_argument("--redis-db", type=int, default=None)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the database for EXPLAIN work (drop it yourself)")
    ap.add_argument("--segments-only", action="store_true", help="only the segment counts (skip the pages)")
    ap.add_argument("--no-rollup", action="store_true",
                    help="do not run the event-count rollup job: event counts read raw events only")
    args = ap.parse_args()

    C.terminate_on_sigterm()
    run = C.Run("audience", C.ROOT / "bench" / "out" / time.strftime("audience-%Y%m%d-%H%M%S"))
    results: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": C.machine(),
                     "contacts": args.contacts, "repeat": args.repeat, "git": C.git_rev(),
                     "loadavg_at_start": os.getloadavg()[0]}
    C.log(f"machine: {results['machine']}; logs in {run.workdir}")
    try:
        database_url = run.create_database()
        redis_db = run.claim_redis_db(args.redis_db)
        env = run.app_env(database_url, redis_db)
        account = run.migrate_and_create_account()
        C.apply_env(env)
        from sqlalchemy import text

        from app import create_app
        from app.extensions import db
        from app.lists import service
        from app.segments.compiler import compile_rules
        from app.tenancy import tenant_scope

        app = create_app()
        org = account["organization_id"]
        with app.app_context():
            db.session.execute(text("UPDATE organizations SET rate_limit_per_second=100000, rate_limit_burst=100000 "
                                    "WHERE id=:id"), {"id": org})
            db.session.commit()
            C.log(f"generating and COPYing {args.contacts:,} contacts and their events")
            results["load"] = load(app.config["SQLALCHEMY_DATABASE_URI"], org, args.contacts)
        C.log(f"loaded: {results['load']}")

        # 0. The segments are saved as dynamic lists (their member_count is what is measured), so the
        #    rollup job (app.segments.rollup, cron) maintains their event-count windows: run it once, timed.
        with app.app_context(), tenant_scope(org, "live"):
            for name, rules in SEGMENTS.items():
                service.create_list({"name": f"seg: {name}"[:200], "list_type": "dynamic", "segment_rules": rules})
            db.session.commit()
        if not args.no_rollup:
            from app.segments import rollup
            with app.app_context():
                t0 = time.perf_counter()
                results["rollup"] = rollup.refresh_windows()
                results["rollup"]["seconds"] = round(time.perf_counter() - t0, 2)
                db.session.execute(text("ANALYZE event_window_counts"))
                db.session.commit()
            C.log(f"rollup job: {results['rollup']}")

        # 1. Segment counts.
        results["segments"] = {}
        plans = []
        with app.app_context(), tenant_scope(org, "live"):
            for name, rules in SEGMENTS.items():
                got = timed(lambda: service.count_segment(rules), args.repeat)
                results["segments"][name] = got
                C.log(f"count {name!r}: {got['value']:,} contacts, median {got['median_ms']} ms "
                      f"(cold {got['cold_ms']}, max {got['max_ms']})")
                clause = service.segment_clause(rules)
                from sqlalchemy import func, select
                stmt = select(func.count()).select_from(service._contacts).where(clause)
                compiled = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
                plan = db.session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")).scalars().all()
                plans.append(f"== {name}\n{json.dumps(rules)}\n" + "\n".join(plan) + "\n")
            db.session.rollback()
        (run.workdir / "plans.txt").write_text("\n".join(plans))
        _ = compile_rules  # (the compiler is what count_segment runs)

        if not args.segments_only:
            # 2. GET /contacts: page 1 vs page 5,000.
            client = app.test_client()
            headers = {"Authorization": f"Bearer {account['live_api_key']}"}
            with app.app_context(), tenant_scope(org, "live"):
                dyn = service.create_list({"name": "Pro payers", "list_type": "dynamic",
                                           "segment_rules": SEGMENTS["pro plan, email opt-in, mrr >= 500"]})
                for name, rules in [kv for kv in SEGMENTS.items() if kv[0] != "pro plan, email opt-in, mrr >= 500"][:5]:
                    service.create_list({"name": name, "list_type": "dynamic", "segment_rules": rules})
                db.session.commit()
                dyn_id = dyn.id
            filters = {
                "none": "", "tag=beta": "tag=beta", "consent[email]=subscribed": "consent%5Bemail%5D=subscribed",
                "attributes[plan]=pro": "attributes%5Bplan%5D=pro", "risk=high": "risk=high",
                "list_id (dynamic)": f"list_id={dyn_id}", "q=lovelace": "q=lovelace",
            }
            results["pages"] = {}
            for name, query in filters.items():
                base = "/api/v1/contacts?limit=20" + (f"&{query}" if query else "")

                def get(url):
                    resp = client.get(url, headers=headers)
                    assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True)[:300])
                    return resp.get_json()

                # Walk to the deep page's cursor with keyset steps of 100 (= 20 × 5,000 rows), as a client would.
                deep_rows = 100_000 if name == "none" else 20_000
                cursor, seen = None, 0
                while seen < deep_rows:
                    page = get("/api/v1/contacts?limit=100" + (f"&{query}" if query else "")
                               + (f"&starting_after={cursor}" if cursor else ""))
                    if not page["data"]:
                        break
                    cursor, seen = page["data"][-1]["id"], seen + len(page["data"])
                    if not page["has_more"]:
                        break
                # Interleaved (page 1, deep page, page 1, …) so a change in the machine's load hits both alike.
                first, deep = timed_pair(lambda: len(get(base)["data"]),
                                         lambda: len(get(f"{base}&starting_after={cursor}")["data"]), args.repeat * 3)
                ratio = round(deep["median_ms"] / first["median_ms"], 2) if first["median_ms"] else None
                results["pages"][name] = {"deep_page": seen // 20, "page_1": first, "deep": deep, "ratio": ratio}
                C.log(f"GET /contacts [{name}]: page 1 {first['median_ms']} ms, page {seen // 20:,} "
                      f"{deep['median_ms']} ms (×{ratio})")

            # 3. GET /lists with six dynamic lists.
            got = timed(lambda: client.get("/api/v1/lists?limit=20", headers=headers).status_code, args.repeat)
            results["lists_index_6_dynamic"] = got
            C.log(f"GET /lists (6 dynamic lists, counts in one pass): median {got['median_ms']} ms")
    except KeyboardInterrupt:
        C.log("interrupted")
        return 130
    finally:
        if args.keep and run.db_name:
            C.log(f"kept database {run.db_name} (--keep): DROP DATABASE it when done")
            run.db_name = None
        run.close()
    out = json.dumps(results, indent=2)
    (run.workdir / "results.json").write_text(out)
    if args.json:
        Path(args.json).write_text(out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
