from flask import send_file
from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import list_schema, paginate
from . import service
from .models import Job
from .schemas import JobQueryArgs, JobSchema
from .storage import storage

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs",
                description="Jobs: imports, exports and other long-running work, with progress, a result file "
                            "and cancel.")

# Jobs belong to contacts (imports, exports) today; reading one needs the read scope of its resource.
READ_SCOPE = "contacts.read"
WRITE_SCOPE = "contacts.write"


@blp.route("")
class Jobs(MethodView):
    @require_scope(READ_SCOPE)
    @blp.arguments(JobQueryArgs, location="query")
    @blp.response(200, list_schema(JobSchema))
    def get(self, args):
        """List jobs (of this key's mode), newest first, optionally by `type` and `status`."""
        return paginate(service.list_jobs_query(args.get("type"), args.get("status")), Job, args, "/api/v1/jobs")


@blp.route("/<job_id>")
class JobById(MethodView):
    @require_scope(READ_SCOPE)
    @blp.response(200, JobSchema)
    def get(self, job_id):
        """Retrieve a job: status, progress (`processed` of `total`), counts, error."""
        return service.get_job(job_id)


@blp.route("/<job_id>/cancel")
class JobCancel(MethodView):
    @require_scope(WRITE_SCOPE)
    @blp.response(200, JobSchema)
    def post(self, job_id):
        """Cancel a queued or running job; a running job stops after its current batch (what it already
        did stays done).  409 if the job has finished."""
        return service.cancel_job(job_id)


@blp.route("/<job_id>/result")
class JobResult(MethodView):
    @require_scope(READ_SCOPE)
    @blp.response(200, description="The result file (CSV: an export's contacts, an import's error report).",
                  content_type="text/csv")
    def get(self, job_id):
        """Download the job's result file; 409 `job_not_ready` until the job has finished, 410 `result_expired`
        once its files are deleted (`JOB_FILE_RETENTION_DAYS`, default 7, after it ended)."""
        job = service.result_of(job_id)
        return send_file(storage().path(job.result_key), mimetype="text/csv", as_attachment=True,
                         download_name=job.result_name or f"{job.id}.csv", max_age=0)
