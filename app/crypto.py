"""Secrets at rest (DKIM private keys, later provider credentials): Fernet (AES-128-CBC + HMAC-SHA256).

The first key encrypts and every key decrypts (``MultiFernet``), so ``ENCRYPTION_KEYS`` can be rotated
by putting a new key first.  Without ``ENCRYPTION_KEYS`` the key is derived from ``SECRET_KEY`` (HKDF),
so a quickstart install needs no extra setting; production should set its own.
"""
from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

__all__ = ["encrypt", "decrypt", "InvalidToken"]


def _derive(secret: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"postline-at-rest", info=b"fernet").derive(
        secret.encode())
    return base64.urlsafe_b64encode(raw)


def _fernet(keys: list[str], secret_key: str) -> MultiFernet:
    material = [k.encode() if len(k) == 44 else _derive(k) for k in keys] or [_derive(secret_key)]
    return MultiFernet([Fernet(k) for k in material])


def _current() -> MultiFernet:
    cfg = current_app.config
    cache_key = (tuple(cfg.get("ENCRYPTION_KEYS") or ()), cfg["SECRET_KEY"])
    cached = current_app.extensions.get("postline_fernet")
    if cached is None or cached[0] != cache_key:
        cached = (cache_key, _fernet(list(cache_key[0]), cache_key[1]))
        current_app.extensions["postline_fernet"] = cached
    return cached[1]


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Raises ``InvalidToken`` when no configured key opens it."""
    return _current().decrypt(token.encode()).decode()
