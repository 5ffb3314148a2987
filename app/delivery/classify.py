"""What an SMTP reply means for the recipient (API.md 3.3, RFC 3463 enhanced status codes).

- 2xx: accepted.
- 4xx (or no answer at all: refused connection, timeout, a dropped session): deferred — retried.
- 5xx with a recipient-level enhanced code (X.1.x mailbox/address, 5.2.1 disabled, 5.5.0 …): a hard
  bounce, and the address is suppressed.
- 5xx for policy or infrastructure (5.7.x blocked/authentication, 5.3.x system, 5.4.x routing,
  5.2.2 mailbox full, 5.6.x content): failed — this message did not go, but the address is fine, so it is
  not suppressed.  A 5xx with no enhanced code is judged by the basic code (550/551/553 → bounce).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ENHANCED_RE = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

# Permanent failures that say "this address is bad" (RFC 3463 3.2 addressing, 3.3 mailbox).
_HARD_BOUNCE = {"5.1.0", "5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.1.6", "5.1.10", "5.2.1", "5.5.0", "5.5.2"}
_BOUNCE_BASIC = {550, 551, 553}


@dataclass(frozen=True)
class Outcome:
    status: str  # accepted | deferred | bounced | failed
    code: int | None
    enhanced: str | None
    text: str


def enhanced_code(text: str) -> str | None:
    match = ENHANCED_RE.match(text or "")
    return ".".join(match.groups()) if match else None


def classify(code: int | None, text: str | bytes | None) -> Outcome:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = (text or "").strip()
    enhanced = enhanced_code(text)
    if code is None or code < 200:
        return Outcome("deferred", code, enhanced or "4.4.1", text or "no answer from the server")
    if 200 <= code < 300:
        return Outcome("accepted", code, enhanced, text)
    if 400 <= code < 500:
        return Outcome("deferred", code, enhanced, text)
    if enhanced is not None:
        if enhanced in _HARD_BOUNCE or enhanced.startswith("5.1."):
            return Outcome("bounced", code, enhanced, text)
        return Outcome("failed", code, enhanced, text)
    return Outcome("bounced" if code in _BOUNCE_BASIC else "failed", code, enhanced, text)
