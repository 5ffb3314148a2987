"""Playwright: upload a CSV on the Import page and watch the progress bar finish (a worker thread runs the
job in-process, as RQ would)."""
from __future__ import annotations

import re
import threading
import time

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402


def _run_job_later(app, job_id):
    """What the RQ worker does with the enqueued job, a moment after the page started polling."""
    from sqlalchemy import select

    from app.bgjobs.models import Job
    from app.extensions import db
    from app.imports.tasks import import_contacts_csv
    from app.tenancy import unscoped
    time.sleep(1.5)
    with app.app_context():
        with unscoped():
            org, mode = db.session.execute(select(Job.organization_id, Job.mode).where(Job.id == job_id)).one()
        db.session.remove()
        import_contacts_csv(job_id, batch_size=50, tenant=(org, mode))


def test_import_csv_and_watch_progress(page, app, sign_up, console_errors, tmp_path):
    sign_up("Import Co")
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,first_name,tags\n" + "".join(f"b{i}@example.com,B{i},vip\n" for i in range(300))
                        + "not-an-email,Bad,\n")
    page.goto("/contacts")
    page.get_by_role("link", name="Import").click()
    expect(page.get_by_role("heading", name="Import and export")).to_be_visible()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Start import").click()
    expect(page.locator("#job-progress")).to_be_visible()
    expect(page.locator("#job-progress")).to_have_attribute("data-status", "queued")
    worker = threading.Thread(target=_run_job_later, args=(app, page.url.rsplit("/", 1)[1]), daemon=True)
    worker.start()
    expect(page.locator("#job-progress")).to_have_attribute("data-status", "completed", timeout=20_000)
    worker.join(timeout=10)
    expect(page.locator("#job-bar")).to_have_attribute("value", "100")
    expect(page.locator("#count-imported")).to_have_text("300")
    expect(page.locator("#count-failed")).to_have_text("1")
    expect(page.locator("#job-result")).to_have_text(re.compile("error report"))
    with page.expect_download() as download:
        page.locator("#job-result").click()
    assert "invalid_email" in download.value.path().read_text()
    assert console_errors == []
