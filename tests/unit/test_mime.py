"""The MIME writer: every variant parses back (email.parser, policy.default) to exactly what was sent, and
the bytes are 7-bit clean with CRLF line ends no longer than 998 octets (RFC 5322 2.1.1)."""
from __future__ import annotations

import email
from email import policy

import pytest

from app.delivery.mime import build_message

BASE = dict(from_email="hello@acme.example", from_name="Acme", to=[{"email": "ada@example.org", "name": None}],
            cc=[], reply_to=[], subject="Hello", html=None, text="Hi", headers={}, attachments=[],
            message_id_header="<abc@acme.example>")


def parse(raw: bytes):
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    return email.message_from_bytes(raw, policy=policy.default)


def content(part) -> str:
    return part.get_content().replace("\r\n", "\n")


@pytest.mark.parametrize("text", ["plain ascii", "ünïcödé ✓ 日本語", "x" * 2000, "a\r\nb\rc\nd", ".dot\n..two",
                                  "trailing spaces   \nand tabs\t", "=3D not an escape ="])
def test_text_round_trips(text):
    msg = parse(build_message(**{**BASE, "text": text}))
    assert content(msg).rstrip("\n") == text.replace("\r\n", "\n").replace("\r", "\n")
    assert msg.get_content_type() == "text/plain"


def test_alternative_with_attachments_and_encoded_headers():
    files = [{"filename": "rapport é.pdf", "content_type": "application/pdf", "content": bytes(range(256)) * 50},
             {"filename": "a.txt", "content_type": "text/plain", "content": b"hello"}]
    raw = build_message(**{**BASE, "from_name": "Zoë Ärger", "subject": "Grüße " * 40,
                           "to": [{"email": "a@example.org", "name": "Ünal, Jr."}, {"email": "b@example.org",
                                                                                   "name": 'Bob "B" Smith'}],
                           "cc": [{"email": "c@example.org", "name": None}],
                           "reply_to": [{"email": "r@acme.example", "name": "Replies"}],
                           "html": "<p>Grüße</p>", "text": "Grüße", "attachments": files,
                           "headers": {"X-Campaign": "spring ☀"},
                           "extra_headers": {"List-Unsubscribe": "<https://x.example/u/t>"}})
    msg = parse(raw)
    assert str(msg["From"]) == "Zoë Ärger <hello@acme.example>"
    assert [a.display_name for a in msg["To"].addresses] == ["Ünal, Jr.", 'Bob "B" Smith']
    assert msg["Cc"] == "c@example.org" and msg["Reply-To"] == "Replies <r@acme.example>"
    assert msg["Subject"] == ("Grüße " * 40).strip() or msg["Subject"] == "Grüße " * 40
    assert msg["X-Campaign"] == "spring ☀" and msg["List-Unsubscribe"] == "<https://x.example/u/t>"
    assert msg["Message-ID"] == "<abc@acme.example>" and msg["MIME-Version"] == "1.0" and msg["Date"]
    assert content(msg.get_body(("plain",))).rstrip("\n") == "Grüße"
    assert content(msg.get_body(("html",))).rstrip("\n") == "<p>Grüße</p>"
    got = list(msg.iter_attachments())
    assert [a.get_filename() for a in got] == ["rapport é.pdf", "a.txt"]
    assert got[0].get_content() == files[0]["content"] and got[1].get_content().rstrip("\r\n") == "hello"


def test_html_only():
    msg = parse(build_message(**{**BASE, "text": None, "html": "<b>hi</b>"}))
    assert msg.get_content_type() == "text/html" and content(msg).rstrip("\n") == "<b>hi</b>"


# --- DKIM ------------------------------------------------------------------------------------------------

def _keypair():
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@pytest.fixture(scope="module")
def signer_and_record():
    from app.delivery.mime import DkimSigner

    pem, record = _keypair()
    return DkimSigner("s2026", "acme.example", pem), record


@pytest.mark.parametrize("variant", [
    {},
    {"html": "<p>a  b\t c </p>\n\n\n", "text": "a  b \t\nc\n\n\n"},
    {"text": "", "html": None},
    {"text": None, "html": None},
    {"subject": "Grüße  \t tabs " * 30, "from_name": "Zoë Ärger",
     "to": [{"email": f"u{i}@example.org", "name": "Ünal, Jr."} for i in range(60)],
     "cc": [{"email": "c@example.org", "name": None}], "headers": {"X-Campaign": "spring   ☀  "}},
    {"extra_headers": {"List-Unsubscribe": "<https://x.example/u/t>, <mailto:u@x.example>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}},
    {"attachments": [{"filename": "a.bin", "content_type": "application/octet-stream", "content": bytes(range(256))}]},
])
def test_dkim_signature_verifies_with_dkimpy(signer_and_record, variant):
    """Our relaxed canonicalization and signature layout, checked by dkimpy's verifier (the oracle)."""
    import dkim

    from app.delivery.mime import build_parts

    signer, record = signer_and_record
    headers, body = build_parts(**{**BASE, **variant})
    raw = signer.sign_parts(headers, body) + b"".join(n + b":" + v for n, v in headers) + b"\r\n" + body
    parse(raw)  # still 7-bit, CRLF, short lines
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)
    signature = email.message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
    tags = {k.strip(): v for k, _, v in (t.partition("=") for t in signature.replace("\r\n", "").split(";"))}
    h = [x.strip() for x in tags["h"].split(":")]
    assert h[:2] == ["from", "from"] and "subject" in h and "date" in h and "message-id" in h
    assert ("list-unsubscribe" in h) == ("extra_headers" in variant)

    # a changed signed header, or a changed body, no longer verifies
    assert not dkim.verify(raw.replace(b"\r\nSubject: ", b"\r\nSubject: X", 1), dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(raw + b"more\r\n", dnsfunc=lambda name, timeout=5: record)


def test_relaxed_canonicalization_matches_dkimpy():
    import random

    from dkim.canonicalization import Relaxed

    from app.delivery.mime import relaxed_body, relaxed_header_value

    rng = random.Random(7)
    pieces = [b"a", b"b", b" ", b"  ", b"\t", b" \t ", b"\r\n", b"\r\n\r\n", b".", b"=", b"\r\n "]
    for _ in range(3000):
        sample = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert relaxed_body(sample) == Relaxed.canonicalize_body(sample), sample
        value = b" " + sample + b"\r\n"
        assert relaxed_header_value(value) + b"\r\n" == Relaxed.canonicalize_headers([(b"X", value)])[0][1], sample
