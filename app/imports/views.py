"""Dashboard: the Import page (CSV upload, export button, recent jobs) and a job page with a live progress
bar (htmx polls the job's fragment every second until the job has finished).  Same services as the API."""
from __future__ import annotations

from flask import Blueprint, redirect, request, send_file, url_for
from sqlalchemy import select

from ..bgjobs import service as jobs
from ..bgjobs.models import Job
from ..bgjobs.storage import storage
from ..errors import ValidationError
from ..extensions import db
from ..web.access import org_required, require
from ..web.htmx import render, wants_fragment
from . import service
from .tasks import max_import_bytes

bp = Blueprint("web_imports", __name__)


def _lists():
    from ..lists.models import ContactList
    return db.session.execute(select(ContactList).where(ContactList.list_type == "static")
                              .order_by(ContactList.name).limit(200)).scalars().all()


def _page(error: str | None = None, status: int = 200):
    recent = db.session.execute(select(Job).where(Job.type.in_(("import", "export")))
                                .order_by(Job.created_at.desc(), Job.id.desc()).limit(20)).scalars().all()
    return render("imports/page.html", status=status, recent=recent, lists=_lists(), error=error,
                  max_mb=max_import_bytes() // (1024 * 1024))


@bp.get("/contacts/import")
@org_required
def index():
    return _page()


@bp.post("/contacts/import")
@org_required
def upload():
    require("write")
    from flask_wtf.csrf import validate_csrf
    from wtforms import ValidationError as CsrfError
    try:
        validate_csrf(request.form.get("csrf_token"))
    except CsrfError:
        return _page("The form expired; reload the page and try again.", 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _page("Choose a CSV file to import.", 422)
    try:
        job = service.start_import(stream=upload.stream, filename=upload.filename,
                                   list_id=request.form.get("list_id") or None,
                                   update_existing=request.form.get("update_existing") == "on",
                                   max_bytes=max_import_bytes())
    except ValidationError as err:  # includes PayloadTooLarge
        return _page(err.message, 422)
    except Exception as err:  # NotFound for a list deleted meanwhile
        from ..errors import DomainError
        if isinstance(err, DomainError):
            return _page(err.message, 422)
        raise
    return redirect(url_for(".job", job_id=job.id), 303)


@bp.post("/contacts/export")
@org_required
def export():
    from flask_wtf.csrf import validate_csrf
    from wtforms import ValidationError as CsrfError
    try:
        validate_csrf(request.form.get("csrf_token"))
    except CsrfError:
        return _page("The form expired; reload the page and try again.", 400)
    job = service.start_export({"list_id": request.form.get("list_id") or None})
    return redirect(url_for(".job", job_id=job.id), 303)


@bp.get("/jobs/<job_id>")
@org_required
def job(job_id):
    job = jobs.get_job(job_id)
    # htmx's "stop polling" status for the finished fragment (which also has no trigger any more).
    status = 286 if job.finished and wants_fragment() else 200
    return render("imports/job.html", "imports/_progress.html", status=status, job=job)


@bp.post("/jobs/<job_id>/cancel")
@org_required
def cancel(job_id):
    require("write")
    from flask_wtf.csrf import validate_csrf
    from wtforms import ValidationError as CsrfError
    try:
        validate_csrf(request.form.get("csrf_token"))
    except CsrfError:
        return redirect(url_for(".job", job_id=job_id), 303)
    jobs.cancel_job(job_id)
    return redirect(url_for(".job", job_id=job_id), 303)


@bp.get("/jobs/<job_id>/result")
@org_required
def result(job_id):
    job = jobs.result_of(job_id)
    return send_file(storage().path(job.result_key), mimetype="text/csv", as_attachment=True,
                     download_name=job.result_name or f"{job.id}.csv", max_age=0)
