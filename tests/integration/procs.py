"""Helpers for tests that start real processes: ports, polling, HTTP, and stopping without leftovers."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition", alive=()):
    """Poll ``predicate`` until it returns a truthy value; fail early if a process in ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc, log in alive:
            if proc.poll() is not None:
                raise AssertionError(f"{what}: process exited with {proc.returncode}\n{tail(log)}")
        if time.monotonic() > deadline:
            logs = "\n".join(tail(log) for _, log in alive)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """(status, headers, body); connection errors give status 0."""
    req = urllib.request.Request(url, headers={"Accept": "application/json, text/html"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, {}, b""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get_json(url: str) -> tuple[int, dict | None]:
    status, _headers, body = http_get(url)
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def tail(path: Path | None, lines: int = 60) -> str:
    if path is None or not Path(path).exists():
        return ""
    text = Path(path).read_text(errors="replace").splitlines()
    return f"--- {Path(path).name} (last {lines} lines) ---\n" + "\n".join(text[-lines:])


def start(argv_or_cmd, env: dict, log: Path, shell: bool = False) -> subprocess.Popen:
    """Start a process in its own session (so it and everything it forks can be stopped together)."""
    argv = ["sh", "-c", "exec " + argv_or_cmd] if shell else argv_or_cmd
    fh = open(log, "ab")
    try:
        return subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        fh.close()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Signal the process group, wait, then SIGKILL whatever is left of it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    return proc.returncode


def child_env(**extra) -> dict:
    """The test session's environment (DATABASE_URL, REDIS_URL, prefixes … set by conftest), with the
    venv's bin first on PATH so Procfile commands (`gunicorn`, `python`, `flask`, `rq`) are the venv's."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def process_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def redis_servers() -> list[str]:
    out = subprocess.run(["pgrep", "-af", "redis-server"], capture_output=True, text=True)
    return out.stdout.splitlines()
