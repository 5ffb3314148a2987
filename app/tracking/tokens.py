"""Signed tokens for the public links in messages (API.md section 15): unsubscribe links, open pixels and
click redirects.

A token names the tenant, the message and the recipient, signed with ``SECRET_KEY`` (itsdangerous, its own
salt), so a link can neither be forged nor pointed at somebody else.  Tokens never expire: a link in a
two-year-old newsletter must still unsubscribe.  Rotating ``SECRET_KEY`` invalidates old links, so keep
it stable.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from functools import lru_cache
from urllib.parse import urlsplit

from flask import current_app
from itsdangerous import BadData, Signer, URLSafeSerializer

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


# --- open and click tracking -------------------------------------------------------------------------------
#
# ``/t/o/<token>`` (open pixel) and ``/t/c/<token>`` (click redirect).  A token is itsdangerous's
# ``value.signature`` format: ``value`` is the URL-safe base64 of a compact JSON list, ``signature`` an
# HMAC-SHA256 under a key itsdangerous derives from SECRET_KEY and the token kind's own salt.  A click token
# carries the URL itself (with the message id and, for mail rendered per recipient, the recipient's row id),
# so the redirect needs no stored link table and can only ever go where a message pointed: changing one
# character of the URL breaks the signature.  Like unsubscribe links, these never expire.
#
# Speed: a broadcast signs every link of every message.  ``itsdangerous.Signer.sign`` re-derives its key on
# each call; ``_LinkSigner`` derives it once and copies a keyed HMAC state per token (≈ 5 µs a link instead of
# ≈ 80 µs for ``URLSafeSerializer.dumps``), producing byte-for-byte what ``Signer.sign`` produces, and
# verifying with ``Signer.unsign`` (constant-time comparison).

_OPEN_SALT = "postline.track.open.v1"
_CLICK_SALT = "postline.track.click.v1"
MAX_TRACKED_URL_LENGTH = 4096  # longer links are left as they are (and some clients truncate them anyway)
MAX_LINK_TOKEN_LENGTH = 6000  # base64 of the longest tracked URL plus ids and signature, with room
_ID_MAX = 40
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f]")


class _LinkSigner:
    def __init__(self, secret: str, salt: str):
        self.signer = Signer(secret, salt=salt, sep=".", key_derivation="hmac",
                              digest_method=hashlib.sha256)
        self._keyed = hmac.new(self.signer.derive_key(), digestmod=hashlib.sha256)

    def sign(self, payload: list) -> str:
        value = base64.urlsafe_b64encode(_JSON.encode(payload).encode()).rstrip(b"=")
        mac = self._keyed.copy()
        mac.update(value)
        return (value + b"." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode("ascii")

    def read(self, token) -> list | None:
        if not isinstance(token, str) or not token or len(token) > MAX_LINK_TOKEN_LENGTH or not token.isascii():
            return None
        try:
            value = self.signer.unsign(token)
            payload = json.loads(base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4)))
        except (BadData, ValueError, TypeError):  # bad signature, bad base64, bad JSON or UTF-8
            return None
        return payload if isinstance(payload, list) else None


@lru_cache(maxsize=8)
def _link_signer(secret: str, salt: str) -> _LinkSigner:
    return _LinkSigner(secret, salt)


def open_signer() -> _LinkSigner:
    return _link_signer(current_app.config["SECRET_KEY"], _OPEN_SALT)


def click_signer() -> _LinkSigner:
    return _link_signer(current_app.config["SECRET_KEY"], _CLICK_SALT)


def _valid_ids(message_id, recipient_id) -> bool:
    return (isinstance(message_id, str) and message_id.startswith("msg_") and len(message_id) <= _ID_MAX
            and isinstance(recipient_id, str) and len(recipient_id) <= _ID_MAX
            and (recipient_id == "" or recipient_id.startswith("rcp_")))


def is_trackable_url(url: str) -> bool:
    """An absolute http(s) URL with a host, no whitespace or control characters, not absurdly long: the
    only kind of link that is ever rewritten, and so the only kind a click token can redirect to."""
    if not url or len(url) > MAX_TRACKED_URL_LENGTH:
        return False
    head = url[:8].lower()
    if head.startswith("https://"):
        rest = url[8:]
    elif head.startswith("http://"):
        rest = url[7:]
    else:
        return False
    if not rest or rest[0] in "/?#\\":  # no host
        return False
    return _UNSAFE_IN_URL.search(url) is None


def open_token(message_id: str, recipient_id: str | None = None) -> str:
    return open_signer().sign([message_id, recipient_id or ""])


def read_open_token(token: str) -> dict | None:
    """``{message_id, recipient_id}`` or None for a forged, altered or malformed token."""
    payload = open_signer().read(token)
    if payload is None or len(payload) != 2 or not _valid_ids(*payload):
        return None
    return {"message_id": payload[0], "recipient_id": payload[1] or None}


def click_token(message_id: str, url: str, recipient_id: str | None = None, signer: _LinkSigner | None = None) -> str:
    """``signer``: ``click_signer()``, passed in by callers that sign many links."""
    return (signer or click_signer()).sign([message_id, recipient_id or "", url])


def read_click_token(token: str) -> dict | None:
    """``{message_id, recipient_id, url}`` or None for a forged, altered or malformed token, or one whose
    URL is not a trackable http(s) URL (we never issue those)."""
    payload = click_signer().read(token)
    if payload is None or len(payload) != 3 or not _valid_ids(payload[0], payload[1]):
        return None
    url = payload[2]
    if not isinstance(url, str) or not is_trackable_url(url):
        return None
    return {"message_id": payload[0], "recipient_id": payload[1] or None, "url": url}
