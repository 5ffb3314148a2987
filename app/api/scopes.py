"""Fine-grained ``resource.action`` scopes (API.md section 1) and their presets."""
from __future__ import annotations

SCOPES = (
    "messages.read", "messages.send", "contacts.read", "contacts.write", "lists.read", "lists.write",
    "templates.read", "templates.write", "broadcasts.read", "broadcasts.write", "domains.read",
    "domains.write", "webhooks.read", "webhooks.write", "api_keys.read", "api_keys.write",
    "suppressions.read", "suppressions.write", "validation.run", "signals.read", "signals.write",
    "analytics.read", "billing.read", "billing.write", "uploads.write",
)

PRESETS = {
    "send": ("messages.send", "messages.read", "contacts.write", "templates.read", "suppressions.write",
             "uploads.write"),
    "read": tuple(s for s in SCOPES if s.endswith(".read")),
    "admin": SCOPES,
}


def expand(scopes: list[str] | None = None, preset: str | None = None) -> list[str]:
    """The sorted, de-duplicated scope list for an explicit list and/or a preset name."""
    out: set[str] = set(PRESETS[preset]) if preset else set()
    out.update(scopes or ())
    return sorted(out)
