#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../.venv/bin/python" "$0" "$@"'
"""Accept-path benchmark: POST /api/v1/messages/email and /messages/batch under gunicorn on PostgreSQL +
Redis, next to a bare Flask ``return "ok"`` app (bench/bare_app.py) served by the same gunicorn settings.

    .venv/bin/python bench/accept.py               # ~2 minutes

1. bare app, ``wrk`` GET: req/s and latency (the ceiling of Flask + gunicorn on this machine);
2. ``POST /messages/email`` with ``wrk`` + Lua (a TEST key: test mode accepts any sender and runs the same
   accept path; every request a new recipient): req/s and p50/p99 at saturation, and the ratio to (1);
3. the same POST at a FIXED rate of half of (2), open loop from a Python generator (latency measured from
   each request's scheduled start, so a stall counts in full): p50/p99;
4. ``POST /messages/batch`` with 1,000 items a call, from concurrent Python clients (a call can take
   seconds, longer than wrk suits): messages/s;
and, in-process through Flask's test client, how many SQL statements and COMMITs one call of each costs.

Setup: a fresh PostgreSQL database (dropped at the end), an empty Redis db number with unique prefixes,
migrations, an enterprise account with ``rate_limit_per_second = rate_limit_burst = 100000`` (the token
bucket would otherwise throttle the load).  No RQ worker runs: accepting only enqueues a coalesced nudge.
Every process is stopped and everything removed at the end, even on Ctrl-C.  Needs ``apt-get install wrk``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from delivery import item  # noqa: E402

GUNICORN = [str(C.VENV_BIN / "gunicorn"), "-w", "2", "--threads", "4", "--worker-class", "gthread",
            "--backlog", "2048", "--log-level", "warning"]

SINGLE_LUA = """
local n = 0
local tid = 0
local body = [==[%BODY%]==]
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
request = function()
  n = n + 1
  local b = string.gsub(body, "BENCHRCPT", "w" .. tid .. "-" .. n .. "-" .. math.random(1, 1000000000))
  return wrk.format("POST", "/api/v1/messages/email", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer %KEY%"}, b)
end
"""


def lua(template: str, key: str, body: str) -> str:
    assert "]==]" not in body
    return template.replace("%KEY%", key).replace("%BODY%", body)


def parse_wrk(out: str) -> dict:
    def ms(value: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s|m)$", value)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]
    r = {"req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
         "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    for q in ("50", "90", "99"):
        m = re.search(rf"^\s+{q}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            r[f"p{q}_ms"] = round(ms(m.group(1)), 2)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    r["socket_errors"] = m.group(1).strip() if m else ""
    return r


def wrk(url: str, seconds: int, connections: int, script: Path | None = None, timeout: str = "10s") -> dict:
    argv = [C.which("wrk"), "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", timeout,
            "--latency"] + (["-s", str(script)] if script else []) + [url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120).stdout
    try:
        return parse_wrk(out)
    except AttributeError:
        raise RuntimeError(f"could not parse wrk output:\n{out}") from None


def fixed_rate(port: int, key: str, rate: float, seconds: float, threads: int = 16) -> dict:
    """Open loop: request i is due at t0 + i/rate; each thread takes the next slot on its own keep-alive
    connection.  Latency counts from the slot's time (coordinated omission corrected)."""
    total = int(rate * seconds)
    lock = threading.Lock()
    slots = iter(range(total))
    lat, service, errors = [], [], []
    t0 = time.perf_counter() + 0.2

    def run(tid: int):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        while True:
            with lock:
                i = next(slots, None)
            if i is None:
                break
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = item(i)
            body["to"] = {"email": f"fixed{tid}-{i}@example.org"}
            payload = json.dumps(body)
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/messages/email", payload, headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 202:
                    errors.append(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            end = time.perf_counter()
            with lock:
                lat.append((end - due) * 1000)
                service.append((end - started) * 1000)
        conn.close()

    pool = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 120)
    achieved = len(lat) / (time.perf_counter() - t0)
    lat.sort()
    service.sort()
    return {"target_rate": round(rate, 1), "achieved_rate": round(achieved, 1), "requests": len(lat),
            "errors": len(errors), "p50_ms": round(C.percentile(lat, 50), 2), "p90_ms": round(C.percentile(lat, 90), 2),
            "p99_ms": round(C.percentile(lat, 99), 2), "max_ms": round(lat[-1], 2) if lat else None,
            "service_p50_ms": round(C.percentile(service, 50), 2),
            "service_p99_ms": round(C.percentile(service, 99), 2)}


def batch_load(port: int, key: str, body: dict, seconds: float, threads: int) -> dict:
    """Closed loop: ``threads`` clients POST the 1,000-item batch back to back for ``seconds`` (a call that
    started in time is waited for).  messages/s = items accepted by completed calls / time to the last answer."""
    payload = json.dumps(body).encode()
    items = len(body["items"])
    lock = threading.Lock()
    lat, errors, accepted = [], [], [0]
    t0 = time.perf_counter()
    stop_at = t0 + seconds

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/messages/batch", payload, headers)
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status == 200 and json.loads(data).get("queued") == items
            except (OSError, http.client.HTTPException, ValueError) as exc:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            with lock:
                lat.append((time.perf_counter() - started) * 1000)
                if ok:
                    accepted[0] += items
                else:
                    errors.append(1)
        conn.close()

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(seconds + 600)
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {"calls": len(lat), "errors": len(errors), "elapsed_s": round(elapsed, 2),
            "msg_per_s": round(accepted[0] / elapsed, 1), "calls_per_s": round(len(lat) / elapsed, 3),
            "p50_ms": round(C.percentile(lat, 50), 1), "p99_ms": round(C.percentile(lat, 99), 1)}


def statement_census(app, key: str) -> dict:
    """SQL statements and COMMITs one single send and one 1,000-item batch cost (in-process test client)."""
    from collections import Counter

    from sqlalchemy import event

    from app.extensions import db
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def on_execute(conn, cursor, statement, params, context, executemany):
        seen.append(" ".join(statement.split()[:4]))

    def on_commit(conn):
        seen.append("COMMIT")

    out = {}
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        for label, path, body in (
                ("single", "/api/v1/messages/email", {**item(1), "to": "census@example.org"}),
                ("batch", "/api/v1/messages/batch", {"items": [{**item(i), "to": f"census{i}@example.org"}
                                                               for i in range(1000)]})):
            client.post(path, json={**item(0), "to": "census-warm@example.org"}, headers=headers)
            seen.clear()
            started = time.perf_counter()
            resp = client.post(path, json=body, headers=headers)
            elapsed = time.perf_counter() - started
            assert resp.status_code in (200, 202), resp.get_json()
            counts = Counter(seen)
            out[label] = {"statements": sum(v for k, v in counts.items() if k != "COMMIT"),
                          "commits": counts["COMMIT"], "in_process_ms": round(elapsed * 1000, 1),
                          "top": counts.most_common(6)}
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
    return out


def measured(server, fn, per: int = 1, database_url: str | None = None) -> dict:
    """Run a load and add the CPU it cost: cores busy on the machine, and CPU ms per request (or per message:
    ``per`` items a call) of gunicorn (master + workers), PostgreSQL and Redis, with the ceiling that CPU
    cost implies on this many idle cores (a projection: it assumes enough concurrency to fill them)."""
    groups = {"gunicorn": C.descendants(server.pid)}
    cpu0, t = C.cpu_snapshot(groups), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    used = C.cpu_delta(cpu0, C.cpu_snapshot(groups), wall, C.backend_pids(database_url) if database_url else [])
    done = (out.get("requests") or out.get("calls") or 0) * per
    out["cores_used"] = used
    if done:
        cost = {k: round(1000 * used[k] * wall / done, 3) for k in ("gunicorn", "postgres", "redis-server")}
        cost["total"] = round(sum(cost.values()), 3)
        out["cpu_ms_per_item"] = cost
        out["cpu_bound_ceiling_per_s"] = round(os.cpu_count() * 1000 / cost["total"], 0) if cost["total"] else None
    return out


def post(port: int, path: str, key: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=15, help="each wrk run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--batch-connections", type=int, default=4, help="concurrent batch clients")
    ap.add_argument("--batch-seconds", type=int, default=20, help="start batch calls for this long")
    ap.add_argument("--fixed-seconds", type=float, default=15)
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the gunicorn workers (on-CPU samples) during the single-send run")
    ap.add_argument("--py-spy", default=os.environ.get("PY_SPY") or C.which("py-spy", "/tmp/pyspy-venv/bin/py-spy"))
    ap.add_argument("--no-census", action="store_true", help="skip counting SQL statements per call")
    ap.add_argument("--redis-db", type=int, default=None)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    C.terminate_on_sigterm()
    run = C.Run("accept", C.ROOT / "bench" / "out" / time.strftime("accept-%Y%m%d-%H%M%S"))
    r: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": C.machine(),
               "git": C.git_rev(), "loadavg_at_start": os.getloadavg()[0], "gunicorn": " ".join(GUNICORN[1:])}
    C.log(f"machine: {r['machine']}; load average {r['loadavg_at_start']:.1f}; logs in {run.workdir}")
    if not C.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    try:
        database_url = run.create_database()
        redis_db = run.claim_redis_db(args.redis_db)
        env = run.app_env(database_url, redis_db)
        account = run.migrate_and_create_account()
        key = account["test_api_key"]
        C.apply_env(env)
        from app import create_app
        app = create_app()
        C.setup_sender_domain(app, account["organization_id"], "bench.example.com")
        if not args.no_census:
            r["census"] = statement_census(app, key)
            C.log(f"SQL per call (in-process): {r['census']}")
        C.log(f"database {run.db_name}, Redis db {redis_db}; enterprise org with a 100,000/s rate limit")

        # --- 1. bare Flask ---------------------------------------------------------------------------------
        port = C.free_port()
        bare = run.spawn("gunicorn-bare", GUNICORN + ["--chdir", str(C.ROOT / "bench"), "-b", f"127.0.0.1:{port}",
                                                      "bare_app:app"])
        C.wait_port(port)
        wrk(f"http://127.0.0.1:{port}/", 2, args.connections)  # warm up
        r["bare"] = measured(bare, lambda: wrk(f"http://127.0.0.1:{port}/", args.seconds, args.connections))
        C.log(f"bare Flask GET /: {r['bare']}")
        run.stop(bare)

        # --- 2. Postline -------------------------------------------------------------------------------------
        port = C.free_port()
        server = run.spawn("gunicorn-postline", GUNICORN + ["-b", f"127.0.0.1:{port}", "wsgi:app"])
        C.wait_port(port, timeout=60)
        body = item(0)
        body["to"] = "BENCHRCPT@example.org"
        status, out = post(port, "/api/v1/messages/email", key, {**body, "to": "preflight@example.org"})
        if status != 202 or out.get("status") != "queued":
            raise RuntimeError(f"pre-flight POST /messages/email: {status} {out}")
        batch_body = {"items": [{**item(i), "to": f"batch{i}@example.org"} for i in range(1000)]}
        status, out = post(port, "/api/v1/messages/batch", key, batch_body)
        if status != 200 or out.get("queued") != 1000:
            raise RuntimeError(f"pre-flight POST /messages/batch: {status} {str(out)[:500]}")
        C.log("pre-flight: single → 202 queued, batch → 1,000 queued")

        single_lua = run.workdir / "single.lua"
        single_lua.write_text(lua(SINGLE_LUA, key, json.dumps(body)))
        url = f"http://127.0.0.1:{port}"
        wrk(url, 3, args.connections, single_lua)  # warm up (pools, caches)
        spy = None
        if args.profile:
            r["profile_file"] = str(run.workdir / "gunicorn.pyspy.txt")
            spy = run.spawn("py-spy", [args.py_spy, "record", "--subprocesses", "--nonblocking", "-r", "200",
                                       "--format", "raw", "-o", r["profile_file"], "-p", str(server.pid)],
                            env=dict(os.environ), stop_grace=30)
            time.sleep(1.0)
        r["single"] = measured(server, lambda: wrk(url, args.seconds, args.connections, single_lua),
                               database_url=database_url)
        if spy is not None:
            run.stop(spy, grace=30, sig=signal.SIGINT)
        r["single"]["ratio_to_bare"] = round(r["single"]["req_per_s"] / r["bare"]["req_per_s"], 3)
        C.log(f"POST /messages/email (saturation): {r['single']}")

        # --- 3. fixed rate at half of (2) ----------------------------------------------------------------------
        r["fixed"] = fixed_rate(port, key, r["single"]["req_per_s"] / 2, args.fixed_seconds)
        C.log(f"POST /messages/email at half load: {r['fixed']}")

        # --- 4. batch ------------------------------------------------------------------------------------------
        r["batch"] = measured(server, lambda: batch_load(port, key, batch_body, args.batch_seconds,
                                                         args.batch_connections), per=1000,
                              database_url=database_url)
        C.log(f"POST /messages/batch (1,000 items): {r['batch']}")

        import psycopg2
        with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM messages GROUP BY status")
            r["messages_in_db"] = dict(cur.fetchall())
        conn.close()
        r["loadavg_at_end"] = os.getloadavg()[0]
        print_results(r)
        if r.get("profile_file") and os.path.exists(r["profile_file"]):
            from _profile import top_functions
            summary = top_functions(r["profile_file"])
            (run.workdir / "profile-summary.txt").write_text(summary + "\n")
            print("\n" + summary)
        (run.workdir / "results.json").write_text(json.dumps(r, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=2))
        return 0
    except KeyboardInterrupt:
        C.log("interrupted: cleaning up")
        return 130
    finally:
        run.close()


def print_results(r: dict) -> None:
    b, s, f, bt = r["bare"], r["single"], r["fixed"], r["batch"]
    print()
    print(f"== accept benchmark, {r['date']} — {r['machine']['nproc']} × {r['machine']['cpu']}, git {r['git']}, "
          f"gunicorn {r['gunicorn']}; load average {r['loadavg_at_start']:.1f} → {r['loadavg_at_end']:.1f}")
    print(f"{'':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  errors")
    print(f"{'bare Flask GET / (wrk)':44} {b['req_per_s']:9.0f} {b.get('p50_ms', 0):8.2f} {b.get('p99_ms', 0):8.2f}  "
          f"{b['non_2xx']} {b['socket_errors']}")
    print(f"{'POST /messages/email, saturation (wrk)':44} {s['req_per_s']:9.0f} {s.get('p50_ms', 0):8.2f} "
          f"{s.get('p99_ms', 0):8.2f}  {s['non_2xx']} {s['socket_errors']}")
    print(f"{'POST /messages/email, fixed ' + str(f['target_rate']) + '/s (open loop)':44} {f['achieved_rate']:9.0f} "
          f"{f['p50_ms']:8.2f} {f['p99_ms']:8.2f}  {f['errors']}")
    print(f"{'POST /messages/batch ×1,000 (calls/s)':44} {bt['calls_per_s']:9.2f} {bt['p50_ms']:8.0f} "
          f"{bt['p99_ms']:8.0f}  {bt['errors']}")
    for label, x in (("bare", b), ("single", s), ("batch (per message)", bt)):
        if "cpu_ms_per_item" in x:
            print(f"CPU ms per {label}: {x['cpu_ms_per_item']}; cores busy {x['cores_used']['machine_busy']} → "
                  f"CPU-bound ceiling on {r['machine']['nproc']} idle cores ≈ {x['cpu_bound_ceiling_per_s']:.0f}/s")
    print()
    print(f"single sends vs bare: {100 * s['ratio_to_bare']:.1f} % (target ≥ 40 %: "
          f"{'MET' if s['ratio_to_bare'] >= 0.4 else 'NOT MET'})")
    print(f"p99 at half load: {f['p99_ms']:.1f} ms (target < 50 ms: {'MET' if f['p99_ms'] < 50 else 'NOT MET'})")
    print(f"batch: {bt['msg_per_s']:.0f} messages/s (target ≥ 20,000: "
          f"{'MET' if bt['msg_per_s'] >= 20000 else 'NOT MET'})")
    print(f"messages in the database: {r['messages_in_db']}")
    for label, c in (r.get("census") or {}).items():
        print(f"SQL for one {label} call: {c['statements']} statements, {c['commits']} commits, "
              f"{c['in_process_ms']} ms in-process; most repeated: {c['top'][:3]}")


if __name__ == "__main__":
    sys.exit(main())
