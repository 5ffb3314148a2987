from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import list_schema, paginate
from ..messages.schemas import MessageSchema
from . import service
from .models import Broadcast
from .schemas import (BroadcastCreateSchema, BroadcastDeletedSchema, BroadcastDetailSchema, BroadcastQueryArgs,
                      BroadcastSchema, BroadcastUpdateSchema, BulkSendSchema, ScheduleSchema, TestSendSchema,
                      bulk_to_create)

blp = Blueprint("broadcasts", __name__, url_prefix="/api/v1",
                description="Broadcasts: one message to a list or to inline recipients — draft, proof, schedule, "
                            "send, cancel, and stats.")


@blp.route("/broadcasts")
class Broadcasts(MethodView):
    @require_scope("broadcasts.read")
    @blp.arguments(BroadcastQueryArgs, location="query")
    @blp.response(200, list_schema(BroadcastSchema))
    def get(self, args):
        """List broadcasts, newest first (filter: `status`)."""
        return paginate(service.list_broadcasts_query(args.get("status")), Broadcast, args, "/api/v1/broadcasts")

    @require_scope("broadcasts.write")
    @blp.arguments(BroadcastCreateSchema)
    @blp.response(201, BroadcastDetailSchema)
    def post(self, data):
        """Create a draft.  `from` must be on a verified domain in live mode (422 `from_not_verified`); content
        is `subject` + `html`/`text` (mustache, rendered per recipient) or a `template_id`; the audience is an
        `audience_list_id` or inline `recipients` (≤ 10,000).  `sms` → 400 `unsupported_channel`."""
        return service.with_stats(service.create_broadcast(data))


@blp.route('/broadcasts/<oid("bc"):broadcast_id>')
class BroadcastById(MethodView):
    @require_scope("broadcasts.read")
    @blp.response(200, BroadcastDetailSchema)
    def get(self, broadcast_id):
        """Retrieve a broadcast with its `stats` (cached for a few seconds)."""
        return service.with_stats(service.get_broadcast(broadcast_id))

    @require_scope("broadcasts.write")
    @blp.arguments(BroadcastUpdateSchema)
    @blp.response(200, BroadcastDetailSchema)
    def patch(self, data, broadcast_id):
        """Change a draft (409 `broadcast_not_editable` once scheduled or sent)."""
        return service.with_stats(service.update_broadcast(broadcast_id, data))

    @require_scope("broadcasts.write")
    @blp.response(200, BroadcastDeletedSchema)
    def delete(self, broadcast_id):
        """Delete a draft (409 `broadcast_not_editable` otherwise)."""
        return {"id": service.delete_broadcast(broadcast_id), "object": "broadcast", "deleted": True}


@blp.route('/broadcasts/<oid("bc"):broadcast_id>/send')
class BroadcastSend(MethodView):
    @require_scope("broadcasts.write")
    @blp.response(202, BroadcastDetailSchema)
    def post(self, broadcast_id):
        """Send now: the fan-out starts in the background (`sending`, then `sent` once every message is
        written).  A draft or scheduled broadcast only (409 `broadcast_not_sendable`)."""
        return service.with_stats(service.send_broadcast(broadcast_id))


@blp.route('/broadcasts/<oid("bc"):broadcast_id>/schedule')
class BroadcastSchedule(MethodView):
    @require_scope("broadcasts.write")
    @blp.arguments(ScheduleSchema)
    @blp.response(200, BroadcastDetailSchema)
    def post(self, data, broadcast_id):
        """Schedule: `scheduled_at` is wall-clock time in the IANA `timezone` (converted to UTC); in the past
        → 400.  Scheduling again moves the time."""
        return service.with_stats(service.schedule_broadcast(broadcast_id, data["scheduled_at"], data["timezone"]))


@blp.route('/broadcasts/<oid("bc"):broadcast_id>/cancel')
class BroadcastCancel(MethodView):
    @require_scope("broadcasts.write")
    @blp.response(200, BroadcastDetailSchema)
    def post(self, broadcast_id):
        """Cancel a scheduled broadcast, or stop one that is sending: the fan-out stops and messages not yet
        handed to the delivery worker are canceled.  409 `broadcast_not_cancelable` otherwise."""
        return service.with_stats(service.cancel_broadcast(broadcast_id))


@blp.route('/broadcasts/<oid("bc"):broadcast_id>/test')
class BroadcastTest(MethodView):
    @require_scope("broadcasts.write")
    @blp.arguments(TestSendSchema)
    @blp.response(202, list_schema(MessageSchema, name="BroadcastTestMessages"))
    def post(self, data, broadcast_id):
        """Send a proof to 1–5 addresses: rendered with sample data, subject prefixed `[Test]`, sent as
        transactional messages (suppressions apply) that are not counted in the broadcast's stats."""
        messages = service.send_test(broadcast_id, list(dict.fromkeys(data["recipients"])))
        return {"object": "list", "url": f"/api/v1/broadcasts/{broadcast_id}/test", "has_more": False,
                "data": messages}


@blp.route("/send/bulk")
class SendBulk(MethodView):
    @require_scope("messages.send")
    @blp.arguments(BulkSendSchema)
    @blp.response(202, BroadcastDetailSchema)
    def post(self, data):
        """Send one email to many recipients in one call (seed 004): an `audience_list_id` or inline
        `recipients`, plus `subject` + `body_html` or a `template_id` rendered per recipient.  Creates a
        broadcast and starts its fan-out; poll `GET /broadcasts/{id}`."""
        return service.with_stats(service.bulk_send(bulk_to_create(data)))
