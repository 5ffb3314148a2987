from flask.views import MethodView
from marshmallow import ValidationError as SchemaError

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import list_schema, paginate
from ..api.validation import describe
from ..errors import ValidationError
from . import service
from .models import Message
from .schemas import (BatchItemsSchema, BatchResultSchema, EmailSendSchema, GenericSendSchema, MessageDetailSchema,
                      MessageQueryArgs, MessageSchema)

blp = Blueprint("messages", __name__, url_prefix="/api/v1/messages",
                description="Messages: send email, and read what happened to it.")

# `POST /messages` payload fields, as `POST /messages/email` names them.
_EMAIL_PAYLOAD = ("from", "subject", "html", "text", "cc", "bcc", "reply_to", "headers", "attachments",
                  "track_opens", "track_clicks", "template_version", "brand_id")


@blp.route("")
class Messages(MethodView):
    @require_scope("messages.read")
    @blp.arguments(MessageQueryArgs, location="query")
    @blp.response(200, list_schema(MessageSchema))
    def get(self, args):
        """List messages, newest first.  Filters: `channel`, `status`, `tag`, `to`, `broadcast_id`,
        `created[gte]`, `created[lte]`."""
        return paginate(service.list_messages_query(args), Message, args, "/api/v1/messages")

    @require_scope("messages.send")
    @blp.arguments(GenericSendSchema)
    @blp.response(202, MessageSchema)
    def post(self, data):
        """Send on any channel with one body shape: `{channel, idempotency_key, destination, payload, …}`.

        `idempotency_key` is required here (it works like the `Idempotency-Key` header).  The email channel
        takes the fields of `POST /messages/email` in `payload`; other channels are not available yet."""
        if data["channel"] != "email":
            raise ValidationError(f"The {data['channel']} channel is not available on this server yet; "
                                  "use channel 'email'.", code="unsupported_channel", param="channel")
        body = {"to": data["destination"], "message_type": data["message_type"]}
        unknown = sorted(set(data["payload"]) - set(_EMAIL_PAYLOAD))
        if unknown:
            raise ValidationError(f"Unknown field 'payload.{unknown[0]}'.", param=f"payload.{unknown[0]}")
        body.update(data["payload"])
        for src, dst in (("metadata", "metadata"), ("template_id", "template_id"), ("template_vars", "variables"),
                         ("tags", "tags"), ("send_at", "send_at")):
            if data.get(src) is not None:
                body[dst] = data[src].isoformat() if src == "send_at" else data[src]
        body["idempotency_key"] = data["idempotency_key"]
        schema = EmailSendSchema()
        try:
            loaded = schema.load(body)
        except SchemaError as exc:
            param, code, message = describe(exc.messages, schema)
            outer = {"to": "destination", "variables": "template_vars", "metadata": "metadata",
                     "template_id": "template_id", "tags": "tags", "send_at": "send_at"}
            head = (param or "").split(".")[0].split("[")[0]
            if head in outer:
                param = outer[head] + (param or "")[len(head):]
            elif param:
                param = "payload." + param
            raise ValidationError(message.replace(f"'{head}'", f"'{param}'") if head else message,
                                  code=code, param=param) from None
        return service.send_email(loaded)


@blp.route("/email")
class EmailMessages(MethodView):
    @require_scope("messages.send")
    @blp.arguments(EmailSendSchema)
    @blp.response(202, MessageSchema)
    def post(self, data):
        """Send an email.  Returns 202 with the message: `queued`, `scheduled` (with `send_at`) or
        `suppressed` (every recipient is on the suppression list, or has no consent for marketing)."""
        return service.send_email(data)


@blp.route("/batch")
class BatchMessages(MethodView):
    @require_scope("messages.send")
    @blp.arguments(BatchItemsSchema)
    @blp.response(200, BatchResultSchema)
    def post(self, data):
        """Send up to 1,000 emails in one call: `items` (full `POST /messages/email` bodies) or a shared
        `template_id`/`from`/`subject` with `messages: [{to, variables}]`.  Each item is validated and
        queued on its own; `data` keeps request order with a result or an error per item."""
        items = data["items"] if data.get("items") else service.shared_batch_items(data)
        return service.send_email_batch(items)


@blp.route('/<oid("msg"):message_id>')
class MessageById(MethodView):
    @require_scope("messages.read")
    @blp.response(200, MessageDetailSchema)
    def get(self, message_id):
        """Retrieve a message with its `recipients`, `events` timeline and SMTP delivery `attempts`."""
        return service.message_detail(message_id)


@blp.route('/<oid("msg"):message_id>/cancel')
class MessageCancel(MethodView):
    @require_scope("messages.send")
    @blp.response(200, MessageSchema)
    def post(self, message_id):
        """Cancel a `scheduled` message.  A message already queued or sent cannot be canceled (409)."""
        return service.cancel_message(message_id)
