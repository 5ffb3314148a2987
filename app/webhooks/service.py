"""Webhook endpoints: create (secret shown once), read, update, pause/resume, delete, rotate the secret,
send a test event; deliveries: list, read with their attempts, retry by hand.

Tenant scoping comes from the session (app.tenancy); the endpoint's mode is the tenant's mode, and only
events of that mode reach it.  URLs pass the SSRF guard (app.ssrf) when saved and again on every request.
"""
from __future__ import annotations

import base64
import secrets

from sqlalchemy import delete, select

from .. import ssrf
from ..crypto import decrypt, encrypt
from ..errors import NotFound, UnprocessableError, ValidationError
from ..events.service import EVENT_TYPES
from .. import epoch as config_epoch
from ..extensions import db
from ..ids import new_id
from ..tenancy import require_tenant
from ..timeutil import utcnow
from . import dispatch
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
TEST_EVENT = "webhook.test"
MAX_ENDPOINTS = 20
EVENT_PREFIXES = sorted({t.split(".", 1)[0] for t in EVENT_TYPES})


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes: the Standard Webhooks secret format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def valid_event_pattern(pattern: str) -> bool:
    if pattern == "*" or pattern in EVENT_TYPES:
        return True
    return pattern.endswith(".*") and pattern[:-2] in EVENT_PREFIXES


def normalise_events(events: list[str] | None) -> list[str]:
    if not events:
        return ["*"]
    for pattern in events:
        if not valid_event_pattern(pattern):
            raise ValidationError(f"Unknown event type {pattern!r}.", param="events")
    events = list(dict.fromkeys(events))
    return ["*"] if "*" in events else events


def check_endpoint_url(url: str) -> str:
    """The URL as it will be called, or ``UnsafeURL`` (400 ``invalid_url``, param ``url``)."""
    return ssrf.check_url(url, live=require_tenant().mode == "live").url


def create_endpoint(data: dict) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint and return it with its signing secret (the only time it is shown)."""
    url = check_endpoint_url(data["url"])
    count = db.session.execute(select(db.func.count(WebhookEndpoint.id))).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise UnprocessableError(f"At most {MAX_ENDPOINTS} webhook endpoints per mode; delete one first.",
                                 code="too_many_webhooks")
    secret = new_secret()
    endpoint = WebhookEndpoint(url=url, description=data.get("description"),
                               events=normalise_events(data.get("events")), secret_encrypted=encrypt(secret),
                               status="enabled", metadata_=data.get("metadata") or {})
    db.session.add(endpoint)
    db.session.flush()
    return endpoint, secret


def list_endpoints_query():
    return select(WebhookEndpoint)


def get_endpoint(endpoint_id: str) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id) if isinstance(endpoint_id, str) else None
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", param="id")
    return endpoint


def update_endpoint(endpoint_id: str, data: dict) -> WebhookEndpoint:
    """Change url, events, description, metadata, or ``status`` (``paused`` / ``enabled``: re-enables a
    disabled endpoint and forgets its failure streak)."""
    endpoint = get_endpoint(endpoint_id)
    if "url" in data:
        endpoint.url = check_endpoint_url(data["url"])
    if "events" in data:
        endpoint.events = normalise_events(data["events"])
    if "description" in data:
        endpoint.description = data["description"]
    if "metadata" in data:
        endpoint.metadata_ = data["metadata"] or {}
    if "status" in data:
        set_status(endpoint, data["status"])
    endpoint.updated_at = utcnow()
    db.session.flush()
    return endpoint


def set_status(endpoint: WebhookEndpoint, status: str) -> None:
    if status not in ("enabled", "paused"):
        raise ValidationError("status must be enabled or paused.", param="status")
    if status == endpoint.status:
        return
    was_idle = endpoint.status != "enabled"
    endpoint.status = status
    if status == "enabled":
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
        endpoint.failing_since = None
        if was_idle:
            # Deliveries held while paused are due now.
            from ..jobs import nudge_after_commit
            from .tasks import dispatch_webhooks
            nudge_after_commit(dispatch_webhooks, key=dispatch.NUDGE_KEY, queue_name="default")


def delete_endpoint(endpoint_id: str) -> str:
    """Delete the endpoint with its deliveries and their log."""
    endpoint = get_endpoint(endpoint_id)
    for model in (WebhookAttempt, WebhookDelivery):
        db.session.execute(delete(model).where(model.endpoint_id == endpoint.id))
    db.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
    config_epoch.bump_after_commit()  # a Core DELETE: the session hooks do not see it
    return endpoint.id


def rotate_secret(endpoint_id: str) -> tuple[WebhookEndpoint, str]:
    """Replace the secret: from now on every request, retries included, is signed with the new one only."""
    endpoint = get_endpoint(endpoint_id)
    secret = new_secret()
    endpoint.secret_encrypted = encrypt(secret)
    endpoint.secret_rotated_at = utcnow()
    endpoint.updated_at = endpoint.secret_rotated_at
    db.session.flush()
    return endpoint, secret


# --- deliveries -------------------------------------------------------------------------------------------------

def list_deliveries_query(endpoint_id: str, status: str | None = None):
    endpoint = get_endpoint(endpoint_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status == "pending":
        stmt = stmt.where(WebhookDelivery.status.in_(("pending", "sending")))
    elif status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return stmt


def get_delivery(endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    endpoint = get_endpoint(endpoint_id)
    delivery = db.session.execute(select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id)).scalar_one_or_none()
    if delivery is None:
        raise NotFound("No such delivery.", param="delivery_id")
    return delivery


def delivery_attempts(delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return list(db.session.execute(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                                   .order_by(WebhookAttempt.created_at.desc(), WebhookAttempt.attempt.desc())
                                   ).scalars())


def _attempt_now(target: dispatch.Target, trigger: str) -> None:
    """Send one attempt from this process, then record it like the dispatcher would.  Nothing is written
    before the request goes out, so no database lock is held while the endpoint answers."""
    sender = dispatch.Sender(threads=1)
    try:
        outcome = sender.send([target])[0]
    finally:
        sender.close()
    dispatch.record_outcomes([outcome], trigger=trigger)


def send_test(endpoint_id: str) -> WebhookDelivery:
    """Send a ``webhook.test`` event to the endpoint now (whatever its status and filters) and log it as a
    delivery.  A failed test is not retried."""
    endpoint = get_endpoint(endpoint_id)
    now = utcnow()
    event_id = new_id("evt")
    body = dispatch.payload_body(event_id, TEST_EVENT, now, {
        "webhook_id": endpoint.id, "message": "This is a test event from Postline."})
    tenant = require_tenant()
    target = dispatch.Target(new_id("whd"), tenant.organization_id, tenant.mode, endpoint.id, endpoint.url,
                             decrypt(endpoint.secret_encrypted), event_id, body, 0, "sending")
    outcome_holder = []
    sender = dispatch.Sender(threads=1)
    try:
        outcome_holder = sender.send([target])
    finally:
        sender.close()
    db.session.add(WebhookDelivery(id=target.delivery_id, endpoint_id=endpoint.id, event_id=event_id,
                                   event_type=TEST_EVENT, payload=body, status="sending", attempt_count=0,
                                   created_at=now, updated_at=now))
    db.session.flush()
    dispatch.record_outcomes(outcome_holder, trigger="test")
    return get_delivery(endpoint.id, target.delivery_id)


def retry_delivery(endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Send the delivery again now, with the same ``webhook-id`` and body (a fresh timestamp and signature).

    Succeeding ends any remaining schedule; failing leaves a still-retrying delivery on its schedule."""
    delivery = get_delivery(endpoint_id, delivery_id)
    _attempt_now(dispatch.load_targets([delivery.id])[0], "manual")
    db.session.expire(delivery)
    return delivery
