"""Building the bytes that go over SMTP, and signing them (DKIM, RFC 6376).

MIME: written directly with the standard library's encoders (see ``build_message``): CRLF line ends,
folded headers, 8-bit content quoted-printable/base64 encoded, so a strict receiver accepts it.  Bcc
recipients never appear in the headers; they only get an envelope RCPT.

DKIM: dkimpy does the RFC 6376 work (header selection, relaxed canonicalisation, folding) and verifies in
the tests, but its RSA is pure Python (~8 ms a signature here, ~120 messages/s per core).  The signature
itself is made by ``cryptography`` (OpenSSL, ~0.7 ms), with the key object loaded once per domain and
cached, as the delivery benchmark needs.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from email import quoprimime
from email.header import Header
from email.utils import encode_rfc2231, formataddr, formatdate, make_msgid

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from dkim.canonicalization import CanonicalizationPolicy

# What the signature covers.  From is signed twice ("over-signed") so no second From can be added in
# transit; the List-Unsubscribe pair must be covered for RFC 8058 one-click to be honoured.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id")
_POLICY = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_NEWLINES = re.compile(r"\r\n|\r")


def _needs_encoding(value: str) -> bool:
    return not value.isascii() or len(value) > 900


def _header(name: str, value: str) -> str:
    """``Name: value`` folded for the wire; RFC 2047 encoded words only when the value is not plain ASCII."""
    if not _needs_encoding(value):
        return f"{name}: {value}"
    return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def _addresses(items: list[dict]) -> str:
    out = []
    for item in items:
        name = item.get("name")
        if not name:
            out.append(item["email"])
        elif name.isascii():
            out.append(formataddr((name, item["email"])))
        else:
            out.append(formataddr((name, item["email"]), charset="utf-8"))
    return ", ".join(out)


def _address_header(name: str, items: list[dict]) -> str:
    value = _addresses(items)
    if len(value) < 900:
        return f"{name}: {value}"
    return f"{name}: " + ",\r\n ".join(v for v in value.split(", "))


def _text_part(content: str, subtype: str) -> str:
    """A text/* part: 7bit when it is short-lined ASCII, else quoted-printable (UTF-8)."""
    content = _NEWLINES.sub("\n", content)
    if content.isascii() and all(len(line) <= 998 for line in content.split("\n")):
        body = content.replace("\n", "\r\n")
        encoding = "7bit"
    else:
        # quoprimime works on octets held in a str (as email.charset feeds it): UTF-8 bytes as latin-1.
        body = quoprimime.body_encode(content.encode("utf-8").decode("latin-1"), maxlinelen=76, eol="\r\n")
        encoding = "quoted-printable"
    if not body.endswith("\r\n"):
        body += "\r\n"
    return (f"Content-Type: text/{subtype}; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n{body}")


def _attachment_part(att: dict) -> str:
    maintype, _, subtype = (att["content_type"] or "application/octet-stream").partition("/")
    filename = att["filename"]
    if filename.isascii() and '"' not in filename and "\\" not in filename:
        param = f'filename="{filename}"'
    else:
        param = "filename*=" + encode_rfc2231(filename, "utf-8")
    data = base64.encodebytes(att["content"]).decode("ascii").replace("\n", "\r\n")
    return (f"Content-Type: {maintype}/{subtype or 'octet-stream'}\r\n"
            f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; {param}\r\n\r\n{data}")


def _multipart(subtype: str, parts: list[str]) -> str:
    boundary = "=_pl_" + secrets.token_hex(12)
    body = "".join(f"--{boundary}\r\n{part}" for part in parts) + f"--{boundary}--\r\n"
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n{body}'


def build_message(**kwargs) -> bytes:
    """The RFC 5322 message as bytes (see ``build_parts``)."""
    headers, body = build_parts(**kwargs)
    return b"".join(name + b":" + value for name, value in headers) + b"\r\n" + body


def build_parts(*, from_email: str, from_name: str | None, to: list[dict], cc: list[dict],
                reply_to: list[dict], subject: str | None, html: str | None, text: str | None,
                headers: dict, attachments: list[dict], message_id_header: str,
                extra_headers: dict | None = None, date: float | None = None) -> tuple[list, bytes]:
    """The RFC 5322 message as bytes: CRLF line ends, lines ≤ 998 octets, 7-bit clean (non-ASCII is
    RFC 2047 / quoted-printable / base64 encoded), so any receiver accepts it without SMTPUTF8.

    Written directly rather than through ``email.message.EmailMessage`` (~3 ms a message here, more than
    the DKIM signature): the encoders are the standard library's, and the tests parse every variant back
    with ``email.parser`` and check it against what was sent."""
    lines = [_address_header("From", [{"email": from_email, "name": from_name}]), _address_header("To", to)]
    if cc:
        lines.append(_address_header("Cc", cc))
    if reply_to:
        lines.append(_address_header("Reply-To", reply_to))
    lines.append(_header("Subject", subject or ""))
    lines.append("Date: " + formatdate(date, usegmt=True))
    lines.append("Message-ID: " + message_id_header)
    for name, value in list((headers or {}).items()) + list((extra_headers or {}).items()):
        lines.append(_header(name, value))
    lines.append("MIME-Version: 1.0")
    if text is not None and html is not None:
        body = _multipart("alternative", [_text_part(text, "plain"), _text_part(html, "html")])
    elif html is not None:
        body = _text_part(html, "html")
    else:
        body = _text_part(text or "", "plain")
    if attachments:
        body = _multipart("mixed", [body] + [_attachment_part(a) for a in attachments])
    # The top-level Content-* lines of the body are headers of the message too.
    head, _, body = body.partition("\r\n\r\n")
    lines.extend(head.split("\r\n"))
    parsed = []
    for line in lines:
        name, _, value = line.partition(":")
        parsed.append((name.encode("ascii"), value.encode("ascii") + b"\r\n"))
    return parsed, body.encode("ascii")


def new_message_id_header(domain: str) -> str:
    return make_msgid(domain=domain)


class DkimSigner:
    """Signs messages for one (selector, domain) with rsa-sha256, relaxed/relaxed."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes):
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.key = serialization.load_pem_private_key(private_key_pem, password=None)

    def sign(self, message: bytes, timestamp: int | None = None) -> bytes:
        """The ``DKIM-Signature: …\\r\\n`` header line(s) to prepend to ``message``."""
        headers, body = dkim.rfc822_parse(message)
        return self.sign_parts(headers, body, timestamp)

    def sign_parts(self, headers: list, body: bytes, timestamp: int | None = None) -> bytes:
        """``sign`` for a message still in parts (``build_parts``): no re-parsing of what was just built."""
        present = {name.lower() for name, _ in headers}
        include = [h for h in SIGNED_HEADERS if h in present]
        include.insert(include.index(b"from") + 1, b"from")  # over-sign From
        body_hash = base64.b64encode(hashlib.sha256(_POLICY.canonicalize_body(body)).digest())
        fields = [
            (b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", self.domain),
            (b"s", self.selector), (b"t", str(int(timestamp or time.time())).encode()),
            (b"h", b" : ".join(include)), (b"bh", body_hash), (b"b", b""),
        ]
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(b"DKIM-Signature"))
        value = dkim.RE_BTAG.sub(b"\\1", value)
        hasher = dkim.HashThrough(hashlib.sha256(), False)
        dkim.hash_headers(hasher, _POLICY, _POLICY.canonicalize_headers(headers), include,
                          (b"DKIM-Signature", b" " + value), dict(fields))
        signature = self.key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        fields[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(b"DKIM-Signature"))
        return b"DKIM-Signature: " + value
