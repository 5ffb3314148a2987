from marshmallow import Schema, fields, validate

from ..api.fields import Timestamp
from ..api.pagination import PaginationArgs
from .models import JOB_STATUSES


class JobSchema(Schema):
    id = fields.String()
    object = fields.Constant("job")
    type = fields.String(metadata={"description": "`import`, `export`, … (open-ended)."})
    status = fields.String(metadata={"enum": list(JOB_STATUSES)})
    total = fields.Integer(allow_none=True, metadata={"description": "Rows (or items) to do, when known."})
    processed = fields.Integer()
    counts = fields.Dict(metadata={"description": "What the job did so far, e.g. `{imported, updated, "
                                                  "skipped, failed}` for an import, `{exported}` for an export."})
    error = fields.String(allow_none=True)
    result_url = fields.Method("_result_url", allow_none=True,
                               metadata={"description": "Download URL of the result file, once there is one."})
    created_at = Timestamp()
    started_at = Timestamp(allow_none=True)
    completed_at = Timestamp(allow_none=True)

    def _result_url(self, job):
        if not job.result_key or job.files_deleted_at is not None:
            return None
        return f"/api/v1/jobs/{job.id}/result" if job.status in ("completed", "failed", "canceled") else None


class JobQueryArgs(PaginationArgs):
    type = fields.String(validate=validate.Length(min=1, max=40))
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
