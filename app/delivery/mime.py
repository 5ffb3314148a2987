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

# What the signature covers.  From is signed twice ("over-signed") so no second From can be added in
# transit; the List-Unsubscribe pair must be covered for RFC 8058 one-click to be honoured.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"reply-to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id")
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
    if "\r" in content:
        content = _NEWLINES.sub("\n", content)
    if content.isascii() and (len(content) <= 998 or max(map(len, content.split("\n"))) <= 998):
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


_date_cache: tuple[int, str] = (0, "")


def _now_date() -> str:
    """The Date header's value for now: formatted once per second (a batch sends hundreds a second)."""
    global _date_cache
    now = time.time()
    second, value = _date_cache
    if int(now) != second:
        value = formatdate(int(now), usegmt=True)
        _date_cache = (int(now), value)
    return value


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
    lines.append("Date: " + (formatdate(date, usegmt=True) if date is not None else _now_date()))
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


# Relaxed canonicalization (RFC 6376 3.4.2 / 3.4.4), written for the headers and bodies ``build_parts``
# makes: every run of spaces and tabs becomes one space (the pattern only matches runs that are not already a
# single space, by far the most common run, so there is nothing to replace), whitespace at line ends goes,
# and so do empty lines at the end of the body.  Compressing first leaves at most one space before a line
# end, which a plain replace removes.  tests/unit/test_mime.py checks these against dkimpy's own, and
# dkimpy's ``verify`` checks the signatures.
_WSP_RUN = re.compile(rb" [ \t]+|\t[ \t]*")


def relaxed_header_value(value: bytes) -> bytes:
    """A header field's value (after the colon) in relaxed form, without the final CRLF."""
    value = value.replace(b"\r\n", b"")
    if b"\n" in value:
        value = value.replace(b"\n", b"")
    if b"  " in value or b"\t" in value:
        value = _WSP_RUN.sub(b" ", value)
    return value.strip()


def relaxed_body(body: bytes) -> bytes:
    if b"  " in body or b"\t" in body:
        body = _WSP_RUN.sub(b" ", body)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return b"" if body == b"\r\n" else body


def _fold_list(items: list[bytes], width: int = 70) -> bytes:
    """``a:b:c``, folded (FWS after a colon) before an item that would pass ``width`` on its line."""
    out, line = [], 0
    for item in items:
        if out and line + len(item) + 1 > width:
            out.append(b":\r\n ")
            line = 1
        elif out:
            out.append(b":")
            line += 1
        out.append(item)
        line += len(item)
    return b"".join(out)


class DkimSigner:
    """Signs messages for one (selector, domain) with rsa-sha256, relaxed/relaxed.

    Made once per domain per dispatcher run: the key object is loaded once (PEM parsing costs more than a
    signature) and so are the padding objects.  Per message it does relaxed canonicalization of the body
    and of the signed headers (our own, above: no re-parsing, no per-header regex passes), two SHA-256s
    and the RSA operation (OpenSSL, which releases the GIL while it works)."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes):
        self.selector = selector.encode()
        self.domain = domain.encode()
        self.key = serialization.load_pem_private_key(private_key_pem, password=None)
        self._padding = padding.PKCS1v15()
        self._prehashed = utils.Prehashed(hashes.SHA256())
        self._prefix = b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + self.domain + b"; s=" + self.selector + b";"
        self._h_tags: dict[tuple, bytes] = {}  # the folded h= list, per list of signed names (a handful)

    def sign(self, message: bytes, timestamp: int | None = None) -> bytes:
        """The ``DKIM-Signature: …\\r\\n`` header line(s) to prepend to ``message``."""
        headers, body = dkim.rfc822_parse(message)
        return self.sign_parts(headers, body, timestamp)

    def sign_parts(self, headers: list, body: bytes, timestamp: int | None = None) -> bytes:
        """``sign`` for a message still in parts (``build_parts``: ``[(name, b" value\\r\\n")]`` and the
        body): no re-parsing of what was just built."""
        # Which fields, in SIGNED_HEADERS order; a name present n times is signed n times, bottom-up
        # (RFC 6376 5.4.2), and From once more than it occurs ("over-signed": no From can be added).
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            by_name.setdefault(name.lower().rstrip(), []).append(value)
        include, hashed = [], []
        for name in SIGNED_HEADERS:
            values = by_name.get(name)
            if not values:
                continue
            for value in reversed(values):
                include.append(name)
                hashed.append(name + b":" + relaxed_header_value(value) + b"\r\n")
            if name == b"from":
                include.append(b"from")
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        names = tuple(include)
        h = self._h_tags.get(names)
        if h is None:
            h = self._h_tags[names] = _fold_list(include)
        value = (self._prefix + b"\r\n t=" + str(int(timestamp or time.time())).encode() + b"; bh=" + body_hash
                 + b";\r\n h=" + h + b";\r\n b=")
        hashed.append(b"dkim-signature:" + relaxed_header_value(b" " + value))
        signature = base64.b64encode(self.key.sign(hashlib.sha256(b"".join(hashed)).digest(), self._padding,
                                                   self._prehashed))
        folded = b"\r\n ".join(signature[i:i + 72] for i in range(0, len(signature), 72))
        return b"DKIM-Signature: " + value + folded + b"\r\n"
