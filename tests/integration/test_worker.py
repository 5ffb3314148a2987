"""worker.py, both worker classes, in burst mode against the session's database and Redis."""
from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from rq.job import JobStatus

from tests.integration.procs import ROOT, child_env

pytestmark = pytest.mark.slow


def _run_worker(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "worker.py", *args], cwd=ROOT, env=child_env(**(env_extra or {})),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how", [["--simple"], ["--fork"], [], ["ENV=fork"]])
def test_worker_runs_jobs_in_an_app_context(app, how):
    """A forked work horse inherits the worker's app and must not reuse its parent's pooled connections."""
    from app.extensions import db
    from app.jobs import queue
    from app.system.models import WorkerHeartbeat
    from app.system.tasks import record_heartbeat

    args = [a for a in how if not a.startswith("ENV=")]
    env_extra = {"POSTLINE_WORKER": a[4:] for a in how if a.startswith("ENV=")}
    names = [f"burst-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with app.app_context():
        jobs = [queue("bulk").enqueue(record_heartbeat, name) for name in names]
    done = _run_worker("--burst", *args, "bulk", env_extra=env_extra)
    assert done.returncode == 0, done.stderr[-3000:]
    with app.app_context():
        for j in jobs:
            j.refresh()
            assert j.get_status() == JobStatus.FINISHED, (j.id, done.stderr[-3000:])
        pids = {db.session.get(WorkerHeartbeat, name).detail.rsplit(" ", 1)[1] for name in names}
        db.session.rollback()
    forking = "--fork" in how or env_extra.get("POSTLINE_WORKER") == "fork"
    assert len(pids) == (3 if forking else 1)  # a work horse per job, or every job in the worker itself


def test_worker_rejects_unknown_queues_and_classes():
    bad_queue = _run_worker("--burst", "urgent")
    assert bad_queue.returncode == 2 and "unknown queue" in bad_queue.stderr
    bad_class = _run_worker("--burst", env_extra={"POSTLINE_WORKER": "threads"})
    assert bad_class.returncode == 2 and "POSTLINE_WORKER" in bad_class.stderr
