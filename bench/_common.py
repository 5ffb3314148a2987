"""Shared plumbing of the hand-run benchmarks (bench/delivery.py, bench/accept.py).

Everything a run creates is its own and is removed at the end, even on Ctrl-C or an error: a PostgreSQL
database with a unique name (created and dropped), a Redis database number that was empty when the run
started (flushed at the end) with unique REDIS_PREFIX / RQ_QUEUE_PREFIX, and child processes started in
their own sessions (terminated by pid).  Loopback only.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("BENCH_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def git_rev() -> str:
    """HEAD's short hash, with ``+dirty`` when the app's code differs from it in this work tree."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "app", "worker.py", "wsgi.py"], cwd=ROOT,
                               timeout=10).returncode != 0
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def which(name: str, *extra: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for path in extra:
        if os.access(path, os.X_OK):
            return path
    return None


def terminate_on_sigterm() -> None:
    """SIGTERM/SIGHUP behave like Ctrl-C, so the `finally` blocks clean up."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


class Run:
    """Owns every resource of one benchmark run; ``close()`` releases them all (idempotent)."""

    def __init__(self, name: str, workdir: Path):
        self.tag = f"bench_{name}_{os.getpid()}_{secrets.token_hex(3)}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[tuple[str, subprocess.Popen, float]] = []
        self.db_name: str | None = None
        self.redis_db: int | None = None
        self.env: dict[str, str] = {}

    # --- processes -------------------------------------------------------------------------------------

    def spawn(self, label: str, argv: list[str], env: dict | None = None, stop_grace: float = 8.0,
              log_file: bool = True, **kwargs) -> subprocess.Popen:
        out = open(self.workdir / f"{label}.log", "wb") if log_file else subprocess.DEVNULL
        proc = subprocess.Popen(argv, env=env or self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, **kwargs)
        self.procs.append((label, proc, stop_grace))
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 8.0, sig: int = signal.SIGTERM) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)

    # --- PostgreSQL ------------------------------------------------------------------------------------

    def create_database(self) -> str:
        import psycopg2
        self.db_name = self.tag.lower()
        conn = psycopg2.connect(PG_ADMIN_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.db_name}"')
        conn.close()
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{self.db_name}"

    def drop_database(self) -> None:
        if not self.db_name:
            return
        import psycopg2
        conn = psycopg2.connect(PG_ADMIN_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        conn.close()
        log(f"dropped database {self.db_name}")
        self.db_name = None

    # --- Redis -------------------------------------------------------------------------------------------

    def claim_redis_db(self, preferred: int | None = None) -> int:
        """A Redis database number that is empty now (15 downwards), or ``preferred`` if it is empty."""
        import redis
        candidates = [preferred] if preferred is not None else list(range(15, 0, -1))
        for n in candidates:
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n)
            if client.dbsize() == 0:
                client.set(f"{self.tag}:claim", "1")  # so a concurrent run skips it
                self.redis_db = n
                return n
        raise RuntimeError(f"no empty Redis database among {candidates}")

    def release_redis_db(self) -> None:
        if self.redis_db is None:
            return
        import redis
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=self.redis_db)
        # Ours alone since the claim (it was empty): everything in it is this run's.
        client.flushdb()
        log(f"flushed Redis db {self.redis_db}")
        self.redis_db = None

    # --- the environment of the app processes ------------------------------------------------------------

    def app_env(self, database_url: str, redis_db: int, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "POSTLINE_"))}
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            REDIS_PREFIX=f"{self.tag}:",
            RQ_QUEUE_PREFIX=f"{self.tag}-",
            SECRET_KEY="bench-secret-key-" + self.tag,
            SMTP_HELO_NAME="bench.localhost",  # no getfqdn() lookup
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        self.env = env
        return env

    def flask(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", *args], env=self.env, cwd=ROOT,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def migrate_and_create_account(self) -> dict:
        self.flask("db", "upgrade")
        out = self.flask("accounts", "create", "--org", "Bench", "--email", "b@example.com",
                         "--password", "bench-password-1", "--plan", "enterprise", "--json")
        return json.loads(out.strip().splitlines()[-1])

    # --- teardown ------------------------------------------------------------------------------------------

    def close(self) -> None:
        for label, proc, grace in reversed(self.procs):
            try:
                self.stop(proc, grace)
            except Exception as exc:  # keep going: the database and Redis must still be released
                log(f"could not stop {label} (pid {proc.pid}): {exc}")
        self.procs.clear()
        for step in (self.drop_database, self.release_redis_db):
            try:
                step()
            except Exception as exc:
                log(f"cleanup step {step.__name__} failed: {exc}")


def apply_env(env: dict[str, str]) -> None:
    """Make this process's own app (create_app reads os.environ) use the run's database and Redis."""
    for key in [k for k in os.environ if k.startswith(("FLASK_", "POSTLINE_"))]:
        del os.environ[key]
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))


def setup_sender_domain(app, org_id: str, domain_name: str) -> str:
    """Create the sending domain through the service (real DKIM key) and mark it verified in SQL."""
    from sqlalchemy import text

    from app.domains.service import create_domain
    from app.extensions import db
    from app.tenancy import tenant_scope

    with app.app_context():
        with tenant_scope(org_id, "live"):
            domain = create_domain(domain_name)
            domain_id = domain.id
            db.session.commit()
        db.session.execute(text("UPDATE domains SET status='verified', verified_at=now() WHERE id=:id"),
                           {"id": domain_id})
        db.session.execute(text("UPDATE organizations SET rate_limit_per_second=100000, "
                                "rate_limit_burst=100000 WHERE id=:id"), {"id": org_id})
        db.session.commit()
        db.session.remove()
    return domain_id


def cpu_snapshot(pids: dict[str, list[int]] | None = None) -> dict:
    """CPU seconds so far: the whole machine (busy, from /proc/stat), each named group of pids, and every
    process called ``postgres`` / ``redis-server``."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) for x in fields]
    idle = values[3] + values[4]
    out = {"machine_busy": (sum(values[:8]) - idle) / tick, "machine_total": sum(values[:8]) / tick}

    def proc_cpu(pid: int) -> tuple[str, float]:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return "", 0.0
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        rest = raw[raw.rindex(")") + 2:].split()
        return comm, (int(rest[11]) + int(rest[12])) / tick

    for name, group in (pids or {}).items():
        out[name] = sum(proc_cpu(p)[1] for p in group)
    out["redis-server"] = 0.0
    out["postgres_pids"] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            comm, cpu = proc_cpu(int(entry))
            if comm == "redis-server":
                out[comm] += cpu
            elif comm == "postgres":
                out["postgres_pids"][int(entry)] = cpu
    return out


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
    return out


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL backends serving this run's database (other sessions' backends are not ours)."""
    import psycopg2
    conn = psycopg2.connect(PG_ADMIN_URL)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database_url.rsplit("/", 1)[1],))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def cpu_delta(before: dict, after: dict, wall: float, pg_pids: list[int] | None = None) -> dict:
    """Cores used on average over ``wall`` seconds, per key (machine: busy cores of ``nproc``).  postgres:
    the backends in ``pg_pids`` (this run's database; a backend born during the window counts in full)."""
    d = {k: (after[k] - before[k]) / wall for k in before if k not in ("machine_total", "postgres_pids")}
    if pg_pids is not None:
        a, b = after["postgres_pids"], before["postgres_pids"]
        d["postgres"] = sum(a.get(p, 0.0) - b.get(p, 0.0) for p in pg_pids if p in a) / wall
    return {k: round(v, 2) for k, v in d.items()}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]
