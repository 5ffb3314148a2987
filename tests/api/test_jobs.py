"""GET /jobs, GET /jobs/{id}, GET /jobs/{id}/result, POST /jobs/{id}/cancel; job.completed events."""
from __future__ import annotations

import io

from sqlalchemy import select, update

from tests.helpers import assert_error


def _upload(api, data: bytes):
    return api.client.post("/api/v1/imports", data={"file": (io.BytesIO(data), "c.csv")},
                           content_type="multipart/form-data", headers={"Authorization": f"Bearer {api.key}"})


def _events(app, account, type_="job.completed"):
    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        return [e.data for e in db.session.execute(select(Event).where(Event.type == type_)).scalars()]


def test_get_and_list_jobs(api, test_api, other_api):
    ids = [_upload(api, b"email\na@b.co\n").get_json()["id"] for _ in range(3)]
    export = api.get("/contacts/export").get_json()
    job = api.get(f"/jobs/{ids[0]}").get_json()
    assert set(job) >= {"id", "type", "status", "total", "processed", "counts", "error", "created_at", "completed_at"}
    assert job["object"] == "job" and job["status"] == "queued" and job["completed_at"] is None
    page = api.get("/jobs?limit=2").get_json()
    assert [j["id"] for j in page["data"]] == [export["id"], ids[2]] and page["has_more"]
    rest = api.get(f"/jobs?limit=10&starting_after={ids[2]}").get_json()
    assert [j["id"] for j in rest["data"]] == [ids[1], ids[0]] and not rest["has_more"]
    assert [j["id"] for j in api.get("/jobs?type=export").get_json()["data"]] == [export["id"]]
    assert len(api.get("/jobs?status=queued").get_json()["data"]) == 4
    assert_error(api.get("/jobs?status=bogus"), 400, "invalid_request", "status")
    assert_error(api.get("/jobs/job_nope"), 404, "not_found")
    assert_error(other_api.get(f"/jobs/{ids[0]}"), 404, "not_found")
    assert_error(test_api.get(f"/jobs/{ids[0]}"), 404, "not_found")
    assert test_api.get("/jobs").get_json()["data"] == []


def test_cancel_a_queued_job(app, api, account):
    from app.imports.tasks import import_contacts_csv
    job = _upload(api, b"email\na@b.co\n").get_json()
    canceled = api.post(f"/jobs/{job['id']}/cancel").get_json()
    assert canceled["status"] == "canceled" and canceled["completed_at"]
    assert_error(api.post(f"/jobs/{job['id']}/cancel"), 409, "conflict")
    with app.app_context():
        assert import_contacts_csv(job["id"], tenant=(account["organization_id"], "live")) is None
    assert api.get("/contacts?email=a@b.co").get_json()["data"] == []
    events = _events(app, account)
    assert [(e["job_id"], e["status"]) for e in events] == [(job["id"], "canceled")]


def test_a_running_import_stops_between_batches_when_canceled(app, api, account, monkeypatch):
    from app.bgjobs.models import Job
    from app.extensions import db
    from app.imports import service, tasks
    rows = b"email\n" + b"".join(f"run{i}@example.com\n".encode() for i in range(50))
    job = _upload(api, rows).get_json()
    real = service.upsert_batch
    calls = []

    def upsert_then_cancel(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # two batches are committed; a user cancels now, from another connection
            with db.engine.begin() as conn:
                conn.execute(update(Job.__table__).where(Job.__table__.c.id == job["id"]).values(status="canceled"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks.service, "upsert_batch", upsert_then_cancel)
    with app.app_context():
        assert tasks.import_contacts_csv(job["id"], batch_size=10, tenant=(account["organization_id"], "live")) is None
    done = api.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "canceled" and done["processed"] == 20 and done["counts"]["imported"] == 20
    assert len(calls) == 3
    emails = {c["email"] for c in api.get("/contacts?limit=100").get_json()["data"]}
    assert len(emails) == 20  # the third batch was rolled back


def test_result_before_and_after_completion(app, api, account):
    from app.imports.tasks import export_contacts
    api.post("/contacts", json={"email": "r@example.com"})
    job = api.get("/contacts/export").get_json()
    assert_error(api.get(f"/jobs/{job['id']}/result"), 409, "job_not_ready", "id")
    with app.app_context():
        export_contacts(job["id"], tenant=(account["organization_id"], "live"))
    done = api.get(f"/jobs/{job['id']}").get_json()
    assert done["result_url"] == f"/api/v1/jobs/{job['id']}/result"
    resp = api.get(f"/jobs/{job['id']}/result")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert "r@example.com" in resp.get_data(as_text=True)
    assert_error(api.post(f"/jobs/{job['id']}/cancel"), 409, "conflict")
    events = _events(app, account)
    assert len(events) == 1 and events[0]["status"] == "completed" and events[0]["counts"] == {"exported": 1}


def test_job_service_api(app, account):
    """The service other features use: create_job / claim / progress / complete / fail / is_canceled."""
    from app.bgjobs import service as jobs
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        job = jobs.create_job("bulk_validation", total=10)
        db.session.commit()
        assert jobs.progress(job.id, 1) is False  # not claimed yet
        assert jobs.claim_job(job.id) is not None and jobs.claim_job(job.id) is None
        assert jobs.progress(job.id, 5, {"valid": 5}) is True and not jobs.is_canceled(job.id)
        assert jobs.complete_job(job.id, {"valid": 10}, processed=10) is True
        assert jobs.fail_job(job.id, "late") is False
        other = jobs.create_job("bulk_validation")
        assert jobs.fail_job(other.id, "boom") is True
        db.session.commit()
        db.session.refresh(job)
        db.session.refresh(other)
        assert (job.status, job.processed, job.counts) == ("completed", 10, {"valid": 10})
        assert (other.status, other.error) == ("failed", "boom")


def test_a_job_left_by_a_dead_worker_resumes_from_its_checkpoint(app, api, account, monkeypatch):
    from datetime import timedelta

    import pytest

    from app.bgjobs.models import Job
    from app.extensions import db
    from app.imports import service, tasks
    from app.timeutil import utcnow
    rows = b"email\n" + b"".join(f"res{i}@example.com\n".encode() for i in range(35))
    job = _upload(api, rows).get_json()
    real = service.upsert_batch
    calls = []

    class WorkerKilled(BaseException):
        """Not an Exception: nothing in the job catches it, as with SIGKILL."""

    def dies_on_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise WorkerKilled()
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks.service, "upsert_batch", dies_on_third_batch)
    with app.app_context(), pytest.raises(WorkerKilled):
        tasks.import_contacts_csv(job["id"], batch_size=10, tenant=(account["organization_id"], "live"))
    left = api.get(f"/jobs/{job['id']}").get_json()
    assert left["status"] == "processing" and left["processed"] == 20
    monkeypatch.setattr(tasks.service, "upsert_batch", real)
    with app.app_context():  # too soon: the row is fresh, another worker may still be on it
        assert tasks.import_contacts_csv(job["id"], tenant=(account["organization_id"], "live")) is None
        with db.engine.begin() as conn:
            conn.execute(update(Job.__table__).where(Job.__table__.c.id == job["id"])
                         .values(updated_at=utcnow() - timedelta(minutes=10)))
        tasks.import_contacts_csv(job["id"], batch_size=10, tenant=(account["organization_id"], "live"))
    done = api.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "completed" and done["processed"] == 35
    assert done["counts"] == {"imported": 35, "updated": 0, "skipped": 0, "failed": 0}


def test_job_files_are_deleted_after_the_retention_window(app, api, account):
    from datetime import timedelta

    from app.bgjobs.models import Job
    from app.bgjobs.service import purge_job_files
    from app.bgjobs.storage import storage
    from app.extensions import db
    from app.imports.tasks import export_contacts, import_contacts_csv
    from app.system.tasks import purge_expired
    from app.timeutil import utcnow

    api.post("/contacts", json={"email": "kept@example.com"})
    export = api.get("/contacts/export").get_json()
    recent = api.get("/contacts/export").get_json()
    upload = _upload(api, b"email\nnot-an-address\n").get_json()  # an input file and an error report
    scope = (account["organization_id"], "live")
    with app.app_context():
        for job_id in (export["id"], recent["id"]):
            export_contacts(job_id, tenant=scope)
        import_contacts_csv(upload["id"], tenant=scope)
        old = utcnow() - timedelta(days=app.config["JOB_FILE_RETENTION_DAYS"] + 1)
        t = Job.__table__
        db.session.execute(update(t).where(t.c.id.in_([export["id"], upload["id"]])).values(completed_at=old))
        db.session.commit()
        folders = {j: storage().path(f"{account['organization_id']}/live/{j}")
                   for j in (export["id"], recent["id"], upload["id"])}
        assert all(folder.is_dir() for folder in folders.values())
        assert purge_expired()["job_files"] >= 2
        assert purge_job_files() == 0  # done once, not again
    assert not folders[export["id"]].exists() and not folders[upload["id"]].exists()
    assert folders[recent["id"]].is_dir()  # within the window: kept
    gone = api.get(f"/jobs/{export['id']}").get_json()
    assert gone["status"] == "completed" and gone["result_url"] is None
    err = assert_error(api.get(f"/jobs/{export['id']}/result"), 410, "result_expired", "id")
    assert "7 days" in err["message"]
    assert_error(api.get(f"/jobs/{upload['id']}/result"), 410, "result_expired", "id")
    assert api.get(f"/jobs/{recent['id']}/result").status_code == 200
