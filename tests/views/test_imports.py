"""Dashboard: the Import page, the job page's self-polling progress, export, downloads."""
from __future__ import annotations

import io
import re

from tests.views.conftest import csrf_from


def _run(app, account, task, job_id):
    with app.app_context():
        return task(job_id, tenant=(account["organization_id"], "live"))


def _job_id(resp) -> str:
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    return resp.headers["Location"].rsplit("/", 1)[1]


def test_import_page_upload_progress_and_report(app, user, account):
    from app.imports.tasks import import_contacts_csv
    page = user.get("/contacts/import")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Import a CSV" in html and 'href="/contacts/import"' in html  # nav entry
    data = {"csrf_token": csrf_from(html), "update_existing": "on",
            "file": (io.BytesIO(b"email,first_name\nweb1@example.com,Web\nnope,Bad\n"), "people.csv")}
    job_id = _job_id(user.client.post("/contacts/import", data=data, content_type="multipart/form-data"))
    queued = user.get(f"/jobs/{job_id}", headers={"HX-Request": "true"})
    fragment = queued.get_data(as_text=True)
    assert queued.status_code == 200 and 'id="job-progress"' in fragment
    assert 'hx-trigger="every 1s"' in fragment and 'data-status="queued"' in fragment
    assert "<html" not in fragment
    _run(app, account, import_contacts_csv, job_id)
    finished = user.get(f"/jobs/{job_id}", headers={"HX-Request": "true"})
    done = finished.get_data(as_text=True)
    assert finished.status_code == 286  # htmx: stop polling
    assert 'data-status="completed"' in done and "hx-trigger" not in done
    assert 'value="100"' in done and re.search(r'id="count-imported">1<', done) and re.search(r'id="count-failed">1<', done)
    report = user.get(f"/jobs/{job_id}/result")
    assert report.status_code == 200 and "invalid_email" in report.get_data(as_text=True)
    full = user.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "<html" in full and "Download the error report" in full
    assert job_id in user.get("/contacts/import").get_data(as_text=True)  # recent jobs


def test_upload_without_file_or_csrf(user):
    html = user.get("/contacts/import").get_data(as_text=True)
    resp = user.client.post("/contacts/import", data={"csrf_token": csrf_from(html)},
                            content_type="multipart/form-data")
    assert resp.status_code == 422 and "Choose a CSV file" in resp.get_data(as_text=True)
    resp = user.client.post("/contacts/import", data={"file": (io.BytesIO(b"email\na@b.co\n"), "x.csv")},
                            content_type="multipart/form-data")
    assert resp.status_code == 400


def test_export_button_gives_a_download(app, user, account):
    from app.imports.tasks import export_contacts
    user.get("/contacts")
    html = user.get("/contacts/import").get_data(as_text=True)
    job_id = _job_id(user.client.post("/contacts/export", data={"csrf_token": csrf_from(html)}))
    pending = user.get(f"/jobs/{job_id}/result")
    assert pending.status_code == 409
    _run(app, account, export_contacts, job_id)
    page = user.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Download contacts.csv" in page
    resp = user.get(f"/jobs/{job_id}/result")
    assert resp.status_code == 200 and resp.get_data(as_text=True).startswith("id,email,")

    # Past the retention window the file is gone, and the page says so instead of offering it.
    from datetime import timedelta

    from sqlalchemy import update

    from app.bgjobs.models import Job
    from app.bgjobs.service import purge_job_files
    from app.extensions import db
    from app.timeutil import utcnow
    with app.app_context():
        t = Job.__table__
        db.session.execute(update(t).where(t.c.id == job_id).values(completed_at=utcnow() - timedelta(days=30)))
        db.session.commit()
        assert purge_job_files() >= 1
    page = user.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Download contacts.csv" not in page and "was deleted" in page and "kept for 7 days" in page
    assert user.get(f"/jobs/{job_id}/result").status_code == 410


def test_jobs_of_other_organizations_are_not_found(app, user, other_account):
    from app.bgjobs.service import create_job
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(other_account["organization_id"], "live"):
        job = create_job("import")
        db.session.commit()
        job_id = job.id
    assert user.get(f"/jobs/{job_id}").status_code == 404
    assert user.get(f"/jobs/{job_id}/result").status_code == 404
