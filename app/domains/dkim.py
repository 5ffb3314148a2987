"""DKIM keys: generation (RSA-2048), the DNS record value, and parsing of published DKIM/SPF/DMARC text."""
from __future__ import annotations

import base64
import re
import secrets
import string

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..timeutil import utcnow

KEY_BITS = 2048
_SELECTOR_ALPHABET = string.ascii_lowercase + string.digits


def new_selector() -> str:
    """``pl`` + year and month + 4 random characters (``pl2606k3x9``): dated, so a rotated key gets a new
    selector, and random, so two domains created the same month never share one."""
    return "pl" + utcnow().strftime("%y%m") + "".join(secrets.choice(_SELECTOR_ALPHABET) for _ in range(4))


def generate_keypair() -> tuple[bytes, str]:
    """A fresh RSA-2048 key: ``(private PEM (PKCS#1, what DKIM signers read), public p= value)``.
    The p= value is the base64 DER SubjectPublicKeyInfo (RFC 6376 section 3.6.1)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode()


def dkim_record_value(public_key_b64: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_key_b64}"


def tags(text: str) -> dict[str, str]:
    """``tag=value; …`` (DKIM, DMARC) into a dict with lower-case tag names; folding whitespace dropped
    from values of ``p=``, which publishers (and DNS consoles) like to break up."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip().lower()
        value = value.strip()
        if name == "p":
            value = re.sub(r"\s+", "", value)
        out.setdefault(name, value)
    return out


def is_dkim_key_record(text: str) -> bool:
    t = tags(text)
    return "p" in t and t.get("v", "DKIM1").upper() == "DKIM1"


def spf_terms(text: str) -> list[str]:
    """The terms of a ``v=spf1`` record after the version, lower-case."""
    return [t.lower() for t in text.split()[1:]]


def is_spf(text: str) -> bool:
    parts = text.strip().split()
    return bool(parts) and parts[0].lower() == "v=spf1"
