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
