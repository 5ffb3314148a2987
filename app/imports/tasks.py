"""RQ jobs of imports and exports: ``import_contacts_csv(job_id)`` and ``export_contacts(job_id)``.

Both claim their ``Job`` row (a conditional UPDATE: a second worker, or a retry of a finished job, gets
nothing), commit after every batch together with the job's progress (one UPDATE, which is also the cancel
check: a canceled job's batch is rolled back and the job stops), and are idempotent on retry: an import
upserts, and a job left ``processing`` by a dead worker is claimed again after ``STALE_AFTER`` and resumes
after the rows its checkpoint (``processed``) counts.  Timeouts: RQ kills a job after ``JOB_TIMEOUT``
(2 h: a million rows take well under a minute on PostgreSQL; the URL download has its own deadline).
"""
from __future__ import annotations

import csv
import io
import logging

from flask import current_app

from ..bgjobs import service as jobs
from ..bgjobs.storage import storage
from ..extensions import db
from ..jobs import job
from ..tenancy import require_tenant
from . import service
from .rows import HeaderError, RowError, csv_record_to_input, fast_validate, header_map

log = logging.getLogger(__name__)

JOB_TIMEOUT = 2 * 3600
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
csv.field_size_limit(1024 * 1024)


def max_import_bytes() -> int:
    return int(current_app.config.get("IMPORT_MAX_BYTES") or DEFAULT_MAX_BYTES)


def job_prefix(job_id: str) -> str:
    t = require_tenant()
    return f"{t.organization_id}/{t.mode}/{job_id}"


def _count_records(path) -> int:
    """Lines after the header (a fast over-estimate when quoted cells hold newlines; corrected at the end)."""
    n, last = 0, b"\n"
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(4 * 1024 * 1024)
            if not chunk:
                break
            n += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        n += 1
    return max(0, n - 1)


def _records(fh):
    """``(row_number, record | None, error)``; row 1 is the header, so numbers match a spreadsheet's."""
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
    reader = csv.reader(text)
    row = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row += 1
            yield row, None, str(exc)
            continue
        row += 1
        yield row, record, None


def _write_errors(out, errors: list[dict]) -> None:
    w = csv.writer(out)
    for e in errors:
        w.writerow([e["row"], service.csv_safe(e.get("email") or ""), e["code"], e.get("param") or "",
                    service.csv_safe(e["message"])])


@job
def import_contacts_csv(job_id: str, batch_size: int = service.BATCH_SIZE) -> dict | None:
    claimed = jobs.claim_job(job_id)
    db.session.commit()
    if claimed is None:
        return None
    params = dict(claimed.params or {})
    store = storage()
    prefix = job_prefix(job_id)
    input_key, report_key = params.get("input_key") or f"{prefix}/input.csv", f"{prefix}/errors.csv"
    resume_at = claimed.processed or 0
    counts = {"imported": 0, "updated": 0, "skipped": 0, "failed": 0, **(claimed.counts or {})}
    try:
        if params.get("url") and not store.exists(input_key):
            from .fetch import FetchError, fetch_to
            try:
                with store.open_write(input_key) as out:
                    fetch_to(params["url"], out, live=require_tenant().mode == "live",
                             max_bytes=max_import_bytes(),
                             timeout=float(current_app.config.get("IMPORT_URL_TIMEOUT") or 300))
            except FetchError as exc:
                store.delete(input_key)
                jobs.fail_job(job_id, str(exc))
                return None
        total = _count_records(store.path(input_key))
        jobs.progress(job_id, resume_at, counts, total=total)
        db.session.commit()
        if resume_at == 0:
            with store.open_write(report_key) as out:
                out.write(b"row,email,code,param,message\r\n")
        with store.open_read(input_key) as fh:
            records = _records(fh)
            first = next(records, None)
            if first is None or first[1] is None:
                jobs.fail_job(job_id, "The file is empty or has no header row.")
                return None
            try:
                columns = header_map(first[1])
            except HeaderError as exc:
                jobs.fail_job(job_id, str(exc))
                return None
            processed = 0
            batch, errors = [], []
            for row, record, problem in records:
                processed += 1
                if processed <= resume_at:
                    continue
                email = None
                if problem is not None:
                    errors.append({"row": row, "code": "invalid_csv", "param": None, "message": problem})
                elif not any(cell.strip() for cell in record):
                    processed -= 1  # blank lines are not rows
                    continue
                elif "\ufffd" in "".join(record) or "\x00" in "".join(record):
                    errors.append({"row": row, "code": "invalid_encoding", "param": None,
                                   "message": "The row is not valid UTF-8 text (or contains NUL)."})
                else:
                    raw = csv_record_to_input(columns, record)
                    email = raw.get("email")
                    try:
                        batch.append((row, fast_validate(raw)))
                    except RowError as err:
                        errors.append({"row": row, "email": email, **err.as_dict()})
                if len(batch) + len(errors) >= batch_size:
                    if not _flush(job_id, batch, errors, counts, processed, params, report_key):
                        return None
                    batch, errors = [], []
            if not _flush(job_id, batch, errors, counts, processed, params, report_key, final=True):
                return None
        store.delete(input_key)  # done: only a resumed job needs its input
    except Exception as exc:
        db.session.rollback()
        log.exception("import %s failed", job_id)
        jobs.fail_job(job_id, f"The import stopped on an unexpected error ({type(exc).__name__}); rows before it "
                              "were imported.", counts)
        db.session.commit()
        raise
    return counts


def _flush(job_id, batch, errors, counts, processed, params, report_key, final: bool = False) -> bool:
    """Upsert one batch and record the checkpoint in the same transaction; False when canceled."""
    res = service.upsert_batch(batch, list_id=params.get("list_id"),
                               update_existing=params.get("update_existing", True),
                               events=params.get("events", True))
    rows_by_index = dict(batch)
    for e in res.errors:
        data = rows_by_index.get(e["index"]) or {}
        errors.append({"row": e["index"], "email": data.get("email"), "code": e["code"], "param": e["param"],
                       "message": e["message"]})
    counts["imported"] += res.imported
    counts["updated"] += res.updated
    counts["skipped"] += res.skipped
    counts["failed"] += sum(1 for e in errors if e["code"] != "contact_erased")
    if final:
        # The row count is now exact (the estimate counted lines).
        from ..bgjobs.models import Job
        jobs._update(job_id, Job.status == "processing", total=processed)
        ok = jobs.complete_job(job_id, counts, processed=processed, result=(report_key, "import-errors.csv", None))
    else:
        ok = jobs.progress(job_id, processed, counts)
    if not ok and not final:
        db.session.rollback()  # canceled: this batch is not applied
        return False
    db.session.commit()
    if errors:
        errors.sort(key=lambda e: e["row"])
        with storage().open_write(report_key, append=True) as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            _write_errors(text, errors)
            text.flush()
            text.detach()
    return ok


@job
def export_contacts(job_id: str, batch_size: int = service.BATCH_SIZE) -> dict | None:
    claimed = jobs.claim_job(job_id)
    db.session.commit()
    if claimed is None:
        return None
    params = dict(claimed.params or {})
    key = f"{job_prefix(job_id)}/contacts.csv"
    try:
        total = service.count_export(params)
        jobs.progress(job_id, 0, {"exported": 0}, total=total)
        db.session.commit()
        written = 0
        with storage().open_write(key) as out:
            text = io.TextIOWrapper(out, encoding="utf-8", newline="")
            for n in service.write_export(text, params, batch_size):
                written = n
                if not jobs.progress(job_id, written, {"exported": written}):
                    db.session.rollback()
                    text.flush()
                    text.detach()
                    return None
                db.session.commit()
            text.flush()
            text.detach()
        jobs.complete_job(job_id, {"exported": written}, processed=written, result=(key, "contacts.csv", written))
    except Exception as exc:
        db.session.rollback()
        log.exception("export %s failed", job_id)
        jobs.fail_job(job_id, f"The export stopped on an unexpected error ({type(exc).__name__}).")
        db.session.commit()
        raise
    return {"exported": written}
