from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import list_schema, paginate
from . import service
from .models import Domain
from .schemas import DomainCreateSchema, DomainDeletedSchema, DomainQueryArgs, DomainSchema

blp = Blueprint("domains", __name__, url_prefix="/api/v1/domains", description="Sending domains: DKIM keys, DNS records, verification.")


@blp.route("")
class Domains(MethodView):
    @require_scope("domains.read")
    @blp.arguments(DomainQueryArgs, location="query")
    @blp.response(200, list_schema(DomainSchema))
    def get(self, args):
        """List the organization's sending domains, newest first (shared by live and test mode)."""
        return paginate(service.list_domains_query(), Domain, args, "/api/v1/domains")

    @require_scope("domains.write")
    @blp.arguments(DomainCreateSchema)
    @blp.response(201, DomainSchema)
    def post(self, data):
        """Add a sending domain: a fresh 2048-bit DKIM key (the private key is encrypted at rest) and the DNS
        records to publish — DKIM, SPF and the return-path MX (required), DMARC and the tracking CNAME
        (recommended).  Then publish them and call `POST /domains/{id}/verify`.  A domain already added →
        409 `domain_exists`."""
        return service.create_domain(data["domain"])


@blp.route("/<domain_id>")
class DomainById(MethodView):
    @require_scope("domains.read")
    @blp.response(200, DomainSchema)
    def get(self, domain_id):
        """Retrieve a domain with its records and their status at the last check."""
        return service.get_domain(domain_id)

    @require_scope("domains.write")
    @blp.response(200, DomainDeletedSchema)
    def delete(self, domain_id):
        """Delete a domain and its DKIM key.  Live sends from it are refused (`from_not_verified`) afterwards."""
        return {"id": service.delete_domain(domain_id), "object": "domain", "deleted": True}


@blp.route("/<domain_id>/verify")
class DomainVerify(MethodView):
    @require_scope("domains.write")
    @blp.response(200, DomainSchema)
    def post(self, domain_id):
        """Look every record up in DNS now and answer per record (`verified`, `pending`: not published yet or
        DNS could not be reached, `failed`: something else is published there).  The domain becomes
        `verified` when DKIM, SPF and the return-path MX are; `fully_verified` when every record is.  The
        first verification records a `domain.verified` event."""
        return service.verify_domain(domain_id)
