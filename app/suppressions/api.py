from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import list_schema, paginate
from . import service
from .models import Suppression
from .schemas import (SuppressionCreateSchema, SuppressionDeleteArgs, SuppressionDeletedSchema,
                      SuppressionQueryArgs, SuppressionSchema)

blp = Blueprint("suppressions", __name__, url_prefix="/api/v1/suppressions", description="Suppressions: recipients that are never contacted.")


def _deleted(suppression: Suppression) -> dict:
    return {"id": suppression.id, "object": "suppression", "channel": suppression.channel,
            "recipient": suppression.recipient, "deleted": True}


@blp.route("")
class Suppressions(MethodView):
    @require_scope("suppressions.read")
    @blp.arguments(SuppressionQueryArgs, location="query")
    @blp.response(200, list_schema(SuppressionSchema))
    def get(self, args):
        """List suppressions, newest first, filtered by `channel`, `recipient` (exact) or `reason`."""
        stmt = service.list_suppressions_query(channel=args.get("channel"), recipient=args.get("recipient"),
                                               reason=args.get("reason"))
        return paginate(stmt, Suppression, args, "/api/v1/suppressions")

    @require_scope("suppressions.write")
    @blp.arguments(SuppressionCreateSchema)
    @blp.response(201, SuppressionSchema)
    @blp.alt_response(200, schema=SuppressionSchema, description="The recipient was already suppressed.")
    def post(self, data):
        """Suppress a recipient: nothing is sent to it on this channel until the suppression is deleted.

        The recipient is normalised (email lower-cased, phone to E.164); a bad one is a 400 `invalid_email` /
        `invalid_phone`.  Idempotent, as Postmark's suppression API is: suppressing a recipient that already
        is answers **200** with the existing suppression, unchanged (its first `reason` is kept), instead of
        a 409 — so a client can replay its own unsubscribe list safely.  A new one answers 201."""
        suppression, created = service.create_suppression(data)
        return suppression, (201 if created else 200)

    @require_scope("suppressions.write")
    @blp.arguments(SuppressionDeleteArgs, location="query")
    @blp.response(200, SuppressionDeletedSchema)
    def delete(self, args):
        """Lift the suppression of `recipient` on `channel` (both required); 404 when it is not suppressed."""
        return _deleted(service.delete_suppression_for(args["channel"], args["recipient"]))


@blp.route("/<suppression_id>")
class SuppressionById(MethodView):
    @require_scope("suppressions.read")
    @blp.response(200, SuppressionSchema)
    def get(self, suppression_id):
        """Retrieve a suppression."""
        return service.get_suppression(suppression_id)

    @require_scope("suppressions.write")
    @blp.response(200, SuppressionDeletedSchema)
    def delete(self, suppression_id):
        """Lift a suppression: the recipient may be contacted again."""
        return _deleted(service.delete_suppression(suppression_id))
