"""A CSV import and an export run by a real worker process (worker.py --burst bulk)."""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

from tests.integration.procs import ROOT, child_env

pytestmark = pytest.mark.slow


def test_worker_runs_an_import_and_an_export(api):
    rows = b"email,first_name,plan\n" + b"".join(f"w{i}@example.com,W{i},pro\n".encode() for i in range(12_000))
    resp = api.client.post("/api/v1/imports", data={"file": (io.BytesIO(rows), "big.csv")},
                           content_type="multipart/form-data", headers={"Authorization": f"Bearer {api.key}"})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    job_id = resp.get_json()["id"]
    done = subprocess.run([sys.executable, "worker.py", "--burst", "bulk"], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    job = api.get(f"/jobs/{job_id}").get_json()
    assert job["status"] == "completed", (job, done.stderr[-3000:])
    assert job["counts"] == {"imported": 12_000, "updated": 0, "skipped": 0, "failed": 0}
    assert job["processed"] == job["total"] == 12_000
    export = api.get("/contacts/export").get_json()
    done = subprocess.run([sys.executable, "worker.py", "--burst", "bulk"], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert api.get(f"/jobs/{export['id']}").get_json()["counts"] == {"exported": 12_000}
    text = api.get(f"/jobs/{export['id']}/result").get_data(as_text=True)
    assert text.count("\n") == 12_001 and "w11999@example.com" in text
