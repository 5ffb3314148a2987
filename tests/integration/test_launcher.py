"""`python -m app.launcher`, the quickstart, from a clean environment: no DATABASE_URL, no REDIS_URL.

It must migrate a fresh SQLite file, start its own Redis, run web + worker + cron, stop everything on
Ctrl-C, stop everything (and fail) when a child dies, and never leave a redis-server behind.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from tests.integration.procs import (ROOT, free_port, get_json, http_get, process_alive, redis_servers,
                                     stop, tail, wait_for)

pytestmark = pytest.mark.slow

# The launcher reads these from the environment; the test session sets some of them (conftest).
SCRUBBED = ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "RQ_QUEUE_PREFIX", "SECRET_KEY", "BASE_URL", "PORT",
            "POSTLINE_ENV")


class Launcher:
    def __init__(self, tmp_path, port: int | None = None):
        self.instance = tmp_path / "instance"
        self.port = port or free_port()
        self.log = tmp_path / f"launcher-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update(POSTLINE_INSTANCE_PATH=str(self.instance), PORT=str(self.port), PYTHONUNBUFFERED="1",
                   LOG_LEVEL="INFO")
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> Launcher:
        with open(self.log, "ab") as fh:
            # Its own session, like a terminal job: the test's signal reaches only the launcher.
            self.proc = subprocess.Popen([sys.executable, "-m", "app.launcher"], cwd=ROOT, env=self.env,
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def find(self, pattern: str, timeout: float = 60):
        return wait_for(lambda: re.search(pattern, self.output()), timeout=timeout, what=repr(pattern),
                        alive=[(self.proc, self.log)])

    def child_pids(self) -> dict[str, int]:
        return {m[0]: int(m[1]) for m in re.findall(r"started (\w+) \(pid (\d+)\)", self.output())}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


def _embedded_redis(launcher: Launcher) -> tuple[str, int]:
    m = launcher.find(r"embedded Redis: REDIS_URL=unix://(\S+) \(pid (\d+)")
    return m.group(1), int(m.group(2))


def _assert_no_leftovers(launcher: Launcher, socket_file: str, redis_pid: int) -> None:
    leftovers = [line for line in redis_servers() if socket_file in line]
    assert leftovers == [], leftovers
    assert not process_alive(redis_pid)
    for name, pid in launcher.child_pids().items():
        assert not process_alive(pid), f"{name} (pid {pid}) outlived the launcher"
    assert not os.path.exists(socket_file)


def test_quickstart_runs_everything_and_stops_cleanly_on_ctrl_c(tmp_path):
    launcher = Launcher(tmp_path).start()
    socket_file, redis_pid = "", 0
    try:
        socket_file, redis_pid = _embedded_redis(launcher)
        alive = [(launcher.proc, launcher.log)]
        ready = launcher.find(r"open (\S+) to create an account")
        signup_path = urlsplit(ready.group(1)).path

        def heartbeat():
            status, body = get_json(launcher.url("/healthz"))
            return body if status == 200 and body["worker"]["ok"] else None

        # cron runs record_heartbeat at start; the worker writes it: the whole chain works.
        health = wait_for(heartbeat, timeout=45, what="/healthz with a worker heartbeat", alive=alive)
        assert health["status"] == "ok" and health["database"]["ok"] and health["redis"]["ok"]

        status, _, page = http_get(launcher.url(signup_path))
        assert status == 200, (signup_path, status)
        assert b"<form" in page
        status, _, _ = http_get(launcher.url("/"))
        assert 200 <= status < 500
        status, body = get_json(launcher.url("/api/v1/contacts"))
        assert status == 401 and body["error"]["code"] == "unauthorized", body

        # The migrations built the default SQLite file in the instance folder; a secret was generated.
        assert (launcher.instance / "postline.sqlite3").exists()
        assert (launcher.instance / "secret_key").stat().st_mode & 0o077 == 0

        # One launcher per instance: a second one refuses rather than sharing (and stopping) this Redis.
        second = subprocess.run([sys.executable, "-m", "app.launcher"], cwd=ROOT,
                                env=dict(launcher.env, PORT=str(free_port())), capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stdout

        started = time.monotonic()
        launcher.proc.send_signal(signal.SIGINT)
        assert launcher.wait_exit(timeout=15) == 0, tail(launcher.log)
        assert time.monotonic() - started < 15
        assert "embedded Redis stopped" in launcher.output()
        _assert_no_leftovers(launcher, socket_file, redis_pid)
        # SIGTERM-ed Redis saved its data where the next launch finds it.
        assert (launcher.instance / "redis.db").exists()
    finally:
        stop(launcher.proc, sig=signal.SIGKILL)
        _kill_if_alive(redis_pid)


def test_a_dead_child_stops_everything_and_fails(tmp_path):
    launcher = Launcher(tmp_path).start()
    redis_pid = 0
    try:
        socket_file, redis_pid = _embedded_redis(launcher)
        launcher.find(r"open (\S+) to create an account")
        worker_pid = launcher.child_pids()["worker"]
        os.kill(worker_pid, signal.SIGKILL)
        assert launcher.wait_exit(timeout=15) != 0, tail(launcher.log)
        assert "worker exited with code -9" in launcher.output()
        _assert_no_leftovers(launcher, socket_file, redis_pid)
    finally:
        stop(launcher.proc, sig=signal.SIGKILL)
        _kill_if_alive(redis_pid)


def _kill_if_alive(pid: int) -> None:
    """Last resort, only for the redis-server this test's launcher reported."""
    if pid and process_alive(pid):
        os.kill(pid, signal.SIGKILL)
