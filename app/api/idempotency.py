"""Idempotency keys (API.md section 1).

A key is *claimed* by inserting an ``in_progress`` row in its own, immediately committed transaction: the
unique constraint ``(organization_id, mode, key)`` lets exactly one of any number of concurrent requests
win, on SQLite and PostgreSQL alike.  The winner runs; the others see ``in_progress`` (409
``idempotency_key_in_use``) or, once the winner has finished, get its stored answer replayed.  5xx answers
are not stored: the claim is released so the client can retry.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import IdempotencyError, ValidationError
from ..extensions import db
from ..timeutil import utcnow
from .models import IdempotencyRecord

MAX_KEY_LENGTH = 255
_table = IdempotencyRecord.__table__
# Headers worth replaying; rate-limit and request-id headers belong to the replaying request.
# X-Request-Id is kept to be replayed as `Original-Request` (as Stripe does): the replay has a request id
# of its own, and a replayed error body names the request that produced it.
_REPLAYED_HEADERS = ("Content-Type", "Location", "X-Request-Id")


@dataclass
class Replay:
    status: int
    body: str
    headers: dict


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Same key + same request → same fingerprint; JSON bodies compare by value, not by formatting."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def form_fingerprint(method: str, path: str, form, files) -> str:
    """The fingerprint of a multipart request, by value: its fields and its files' names, types and bytes
    (streamed, never held in memory), so a retry that the client encodes with a new boundary still
    matches.  Each file is rewound for the view that reads it next."""
    digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n")
    for name in sorted(form.keys()):
        digest.update(json.dumps(["field", name, form.getlist(name)]).encode())
    for name in sorted(files.keys()):
        for upload in files.getlist(name):
            digest.update(json.dumps(["file", name, upload.filename, upload.content_type]).encode())
            stream = upload.stream
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
            stream.seek(0)
    return digest.hexdigest()


def _where(org_id: str, mode: str, key: str):
    return and_(_table.c.organization_id == org_id, _table.c.mode == mode, _table.c.key == key)


def claim(org_id: str, mode: str, key: str, request_hash: str) -> Replay | None:
    """Claim ``key`` for this request, or return the stored answer to replay.  Raises on conflicts."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} characters.", param="Idempotency-Key")
    ttl = timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])
    now = utcnow()
    with db.engine.connect() as conn:
        # An expired key is free again.
        conn.execute(delete(_table).where(_where(org_id, mode, key), _table.c.created_at < now - ttl))
        conn.commit()
        try:
            conn.execute(insert(_table).values(organization_id=org_id, mode=mode, key=key,
                                               request_hash=request_hash, state="in_progress", created_at=now))
            conn.commit()
            return None
        except IntegrityError:
            conn.rollback()
        row = conn.execute(select(_table).where(_where(org_id, mode, key))).first()
    if row is None:  # released between our insert and our read: the client may simply retry
        raise IdempotencyError("A request with this Idempotency-Key is in progress; retry shortly.",
                               code="idempotency_key_in_use", param="Idempotency-Key")
    if row.request_hash != request_hash:
        raise IdempotencyError("This Idempotency-Key was already used with a different request.",
                               code="idempotency_key_reused", param="Idempotency-Key")
    if row.state != "completed":
        raise IdempotencyError("A request with this Idempotency-Key is still in progress.",
                               code="idempotency_key_in_use", param="Idempotency-Key")
    return Replay(row.response_status, row.response_body or "", json.loads(row.response_headers or "{}"))


def store(org_id: str, mode: str, key: str, response) -> None:
    """Keep a finished answer for replay; release the claim for a 5xx so a retry runs again."""
    with db.engine.connect() as conn:
        if response.status_code >= 500:
            conn.execute(delete(_table).where(_where(org_id, mode, key)))
        else:
            headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
            conn.execute(update(_table).where(_where(org_id, mode, key)).values(
                state="completed", response_status=response.status_code,
                response_body=response.get_data(as_text=True), response_headers=json.dumps(headers)))
        conn.commit()


def release(org_id: str, mode: str, key: str) -> None:
    with db.engine.connect() as conn:
        conn.execute(delete(_table).where(_where(org_id, mode, key), _table.c.state == "in_progress"))
        conn.commit()


def purge_expired() -> int:
    ttl = timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])
    with db.engine.connect() as conn:
        result = conn.execute(delete(_table).where(_table.c.created_at < utcnow() - ttl))
        conn.commit()
        return result.rowcount
