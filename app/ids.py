"""Opaque, prefixed, random identifiers (never sequential)."""
from __future__ import annotations

import secrets
import string

ALPHABET = string.digits + string.ascii_letters  # base62


def random_base62(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 20) -> str:
    """``new_id("con")`` → ``con_4fJ9…``: 20 base62 chars ≈ 119 bits of randomness."""
    return f"{prefix}_{random_base62(length)}"
