"""Signed tokens for the public links in messages (API.md section 15): unsubscribe links for now.

A token names the tenant, the message and the recipient, signed with ``SECRET_KEY`` (itsdangerous, its own
salt), so a link can neither be forged nor pointed at somebody else.  Tokens never expire: a link in a
two-year-old newsletter must still unsubscribe.  Rotating ``SECRET_KEY`` invalidates old links, so keep
it stable.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer

from ..suppressions.models import SUPPRESSION_CHANNELS
from ..tenancy import MODES

_SALT = "postline.unsubscribe.v1"
MAX_TOKEN_LENGTH = 2000  # far above any real token; refuses absurd input before any crypto


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def unsubscribe_token(organization_id: str, mode: str, message_id: str | None, recipient: str,
                      channel: str = "email") -> str:
    """A URL-safe token for ``recipient``'s unsubscribe link.  Compact: a positional list, not a dict
    (it goes into a header line and a mailto local part)."""
    if mode not in MODES or channel not in SUPPRESSION_CHANNELS:
        raise ValueError("bad mode or channel")
    return _serializer().dumps([organization_id, mode[0], message_id or "", recipient, channel[0]])


def read_unsubscribe_token(token: str) -> dict | None:
    """``{organization_id, mode, message_id, recipient, channel}``, or None for a forged, altered or
    malformed token."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload = _serializer().loads(token)
    except BadData:
        return None
    if not isinstance(payload, list) or len(payload) != 5 or not all(isinstance(p, str) for p in payload):
        return None
    org_id, mode, message_id, recipient, channel = payload
    mode = {"l": "live", "t": "test"}.get(mode)
    channel = {"e": "email", "s": "sms"}.get(channel)
    if not org_id or not recipient or mode is None or channel is None:
        return None
    return {"organization_id": org_id, "mode": mode, "message_id": message_id or None,
            "recipient": recipient, "channel": channel}


def unsubscribe_url(organization_id: str, mode: str, message_id: str | None, recipient: str,
                    channel: str = "email") -> str:
    """``BASE_URL/u/<token>``: the page (GET) and the RFC 8058 one-click target (POST)."""
    token = unsubscribe_token(organization_id, mode, message_id, recipient, channel)
    return f"{current_app.config['BASE_URL']}/u/{token}"


def _inbound_host() -> str:
    host = current_app.config.get("INBOUND_MX_HOST")
    return host or urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"


def unsubscribe_mailto(organization_id: str, mode: str, message_id: str | None, recipient: str,
                       channel: str = "email") -> str:
    """``mailto:unsubscribe+<message id>@<inbound host>`` (RFC 2369).

    The local part stays within RFC 5321's 64 octets and survives case-folding MTAs: a message id is
    random (≈ 119 bits, unguessable) and, with the unsubscribe mail's own From address, identifies the
    recipient.  A send with no message (none today) falls back to the signed token.  The inbound SMTP
    server that acts on these mails comes with the inbound-mail issue."""
    local = message_id or unsubscribe_token(organization_id, mode, message_id, recipient, channel)
    return f"mailto:unsubscribe+{local}@{_inbound_host()}"


def list_unsubscribe_headers(organization_id: str, mode: str, message_id: str | None, recipient: str) -> dict:
    """The two headers of a marketing email (RFC 2369 + RFC 8058 one-click).  DKIM must sign both."""
    token = unsubscribe_token(organization_id, mode, message_id, recipient)
    url = f"{current_app.config['BASE_URL']}/u/{token}"
    mailto = unsubscribe_mailto(organization_id, mode, message_id, recipient)
    return {"List-Unsubscribe": f"<{url}>, <{mailto}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
