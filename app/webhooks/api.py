from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import PaginationArgs, list_schema, paginate
from . import service
from .models import WebhookDelivery, WebhookEndpoint
from .schemas import (DeliveryQueryArgs, WebhookCreateSchema, WebhookDeletedSchema, WebhookDeliveryDetailSchema,
                      WebhookDeliverySchema, WebhookSchema, WebhookUpdateSchema, WebhookWithSecretSchema)

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks",
                description="Webhook endpoints: signed event notifications (Standard Webhooks), with retries "
                            "and a delivery log.")


def _with_secret(endpoint, secret):
    endpoint.signing_secret = secret  # transient: serialised once by WebhookWithSecretSchema
    return endpoint


def _detail(delivery):
    delivery.attempts = service.delivery_attempts(delivery)
    return delivery


@blp.route("")
class Webhooks(MethodView):
    @require_scope("webhooks.read")
    @blp.arguments(PaginationArgs, location="query")
    @blp.response(200, list_schema(WebhookSchema))
    def get(self, args):
        """List webhook endpoints (of this key's mode), newest first."""
        return paginate(service.list_endpoints_query(), WebhookEndpoint, args, "/api/v1/webhooks")

    @require_scope("webhooks.write")
    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookWithSecretSchema)
    def post(self, data):
        """Create an endpoint.  The `signing_secret` (`whsec_…`) is in this response only."""
        return _with_secret(*service.create_endpoint(data))


@blp.route("/<webhook_id>")
class WebhookById(MethodView):
    @require_scope("webhooks.read")
    @blp.response(200, WebhookSchema)
    def get(self, webhook_id):
        """Retrieve an endpoint (never its secret)."""
        return service.get_endpoint(webhook_id)

    @require_scope("webhooks.write")
    @blp.arguments(WebhookUpdateSchema)
    @blp.response(200, WebhookSchema)
    def patch(self, data, webhook_id):
        """Change the URL, events, description or metadata; pause (`status: paused`) or resume."""
        return service.update_endpoint(webhook_id, data)

    @require_scope("webhooks.write")
    @blp.response(200, WebhookDeletedSchema)
    def delete(self, webhook_id):
        """Delete an endpoint and its delivery log."""
        return {"id": service.delete_endpoint(webhook_id), "object": "webhook_endpoint", "deleted": True}


@blp.route("/<webhook_id>/rotate-secret")
class WebhookRotateSecret(MethodView):
    @require_scope("webhooks.write")
    @blp.response(200, WebhookWithSecretSchema)
    def post(self, webhook_id):
        """Replace the signing secret: the old one signs nothing from now on.  The new one is shown once."""
        return _with_secret(*service.rotate_secret(webhook_id))


@blp.route("/<webhook_id>/test")
class WebhookTest(MethodView):
    @require_scope("webhooks.write")
    @blp.response(200, WebhookDeliveryDetailSchema)
    def post(self, webhook_id):
        """Send a `webhook.test` event now and return the delivery with its attempt."""
        return _detail(service.send_test(webhook_id))


@blp.route("/<webhook_id>/deliveries")
class WebhookDeliveries(MethodView):
    @require_scope("webhooks.read")
    @blp.arguments(DeliveryQueryArgs, location="query")
    @blp.response(200, list_schema(WebhookDeliverySchema))
    def get(self, args, webhook_id):
        """The endpoint's deliveries, newest first, optionally by `status`."""
        stmt = service.list_deliveries_query(webhook_id, args.get("status"))
        return paginate(stmt, WebhookDelivery, args, f"/api/v1/webhooks/{webhook_id}/deliveries")


@blp.route("/<webhook_id>/deliveries/<delivery_id>")
class WebhookDeliveryById(MethodView):
    @require_scope("webhooks.read")
    @blp.response(200, WebhookDeliveryDetailSchema)
    def get(self, webhook_id, delivery_id):
        """A delivery with the body sent and every attempt (request headers, response code, first 1 KiB of
        the response, duration)."""
        return _detail(service.get_delivery(webhook_id, delivery_id))


@blp.route("/<webhook_id>/deliveries/<delivery_id>/retry")
class WebhookDeliveryRetry(MethodView):
    @require_scope("webhooks.write")
    @blp.response(200, WebhookDeliveryDetailSchema)
    def post(self, webhook_id, delivery_id):
        """Send the delivery again now (same `webhook-id` and body, fresh signature) and return it."""
        return _detail(service.retry_delivery(webhook_id, delivery_id))
