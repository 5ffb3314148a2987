"""The Procfile, run for real: release migrates, web serves /healthz, worker works the queues, clock
enqueues the periodic jobs — against the session's database and Redis (SQLite + embedded Redis, or the
PostgreSQL and Redis of DATABASE_URL / REDIS_URL)."""
from __future__ import annotations

import shlex
import subprocess
import uuid

import pytest
from rq.job import Job, JobStatus

from tests.integration.procs import (ROOT, child_env, free_port, get_json, start, stop, tail,
                                     wait_for)

pytestmark = pytest.mark.slow


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def test_procfile_declares_release_web_worker_and_clock():
    entries = procfile()
    assert entries["release"] == "flask --app wsgi db upgrade"
    web = shlex.split(entries["web"])
    assert web[:2] == ["gunicorn", "wsgi:app"]
    assert web[web.index("--bind") + 1] == "0.0.0.0:$PORT"
    assert shlex.split(entries["worker"]) == ["python", "worker.py", "high", "default", "bulk", "low"]
    assert shlex.split(entries["clock"]) == ["rq", "cron", "app/system/cron.py"]


def test_procfile_processes_serve_and_work(app, tmp_path):
    """`app` ran the migrations on the session's database already: release must be a clean no-op."""
    from app.extensions import db, redis
    from app.jobs import queue
    from app.system.models import WorkerHeartbeat
    from app.system.tasks import record_heartbeat

    entries = procfile()
    port = free_port()
    env = child_env(PORT=port)

    release = subprocess.run(["sh", "-c", entries["release"]], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert release.returncode == 0, release.stdout + release.stderr

    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker", "clock")}
    procs = {}
    try:
        # Heroku runs each Procfile line with a shell, which expands $PORT.
        for name in logs:
            procs[name] = start(entries[name], env, logs[name], shell=True)
        alive = [(procs[n], logs[n]) for n in procs]

        with app.app_context():
            beat_name = f"procfile-{uuid.uuid4().hex[:8]}"
            job = queue("high").enqueue(record_heartbeat, beat_name)
            connection = redis.client

            def finished():
                job.refresh()
                status = job.get_status()
                assert status != JobStatus.FAILED, (job.latest_result(), tail(logs["worker"]))
                return status == JobStatus.FINISHED

            wait_for(finished, timeout=30, what="the worker to run record_heartbeat", alive=alive)
            beat = db.session.get(WorkerHeartbeat, beat_name)
            assert beat is not None and "pid" in beat.detail
            db.session.rollback()

            # clock: `rq cron` enqueues record_heartbeat at start on *this deployment's* prefixed queue.
            from rq.cron import get_cron_job_ids
            our_high = app.config["RQ_QUEUE_PREFIX"] + "high"

            def cron_heartbeat_ran():
                for job_id in get_cron_job_ids("app.system.tasks.record_heartbeat", connection):
                    try:
                        cron_job = Job.fetch(job_id, connection=connection)
                    except Exception:
                        continue
                    if cron_job.origin == our_high and cron_job.get_status() == JobStatus.FINISHED:
                        return True
                return False

            wait_for(cron_heartbeat_ran, timeout=30, what="clock's heartbeat on the prefixed queue",
                     alive=alive)

        def healthy():
            status, body = get_json(f"http://127.0.0.1:{port}/healthz")
            return (status, body) if status == 200 else None

        status, body = wait_for(healthy, timeout=30, what="web /healthz 200", alive=alive)
        assert body["status"] == "ok", body
        assert body["database"]["ok"] is True and body["redis"]["ok"] is True
        assert body["worker"]["ok"] is True and body["worker"]["last_heartbeat_at"].endswith("Z")
    finally:
        codes = {name: stop(proc) for name, proc in procs.items()}
    # Each process shuts down cleanly on SIGTERM (a platform's stop signal).
    for name, code in codes.items():
        assert code in (0, -15), (name, code, tail(logs[name]))
