"""SMTP transport: a relay (``SMTP_RELAY_URL``) or straight to the recipient domain's MX.

Connections are kept per (host, port) and reused for every message of a batch (and across batches of the
same dispatcher run) — a new TCP + EHLO + STARTTLS per message would cost more than the message itself.
Each transaction is driven by us over smtplib's connection, so every recipient gets the receiving server's
own answer, verbatim, rather than smtplib's all-or-nothing exceptions.  When the server offers PIPELINING
(RFC 2920), MAIL FROM, every RCPT TO and DATA go in one write and their replies are read in order; the
content follows the 354: two round trips a message.  Without it, one command at a time.

A ``ConnectionPool`` belongs to one thread (the dispatcher's sender lanes, app.delivery.service, each have
their own).
"""
from __future__ import annotations

import ipaddress
import logging
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import dns.exception
import dns.resolver

from .. import dnsutil
from .classify import Outcome, classify

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0  # drop pooled connections idle this long (servers drop them after ~60-300 s)
MAX_MESSAGES_PER_CONNECTION = 500  # many receivers cap messages per session; reconnect before they do


@dataclass(frozen=True)
class Route:
    """Where one recipient domain's mail goes: an ordered list of (host label, address, port)."""

    hosts: list[tuple[str, str, int]]
    relay: bool = False
    error: Outcome | None = None  # the domain cannot receive mail at all (NXDOMAIN, null MX)


class Relay:
    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_RELAY_URL must be smtp://[user:pass@]host[:port] or smtps://…")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 587)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None


class Router:
    """Resolves recipient domains to hosts, once per domain per dispatcher run."""

    def __init__(self, relay_url: str | None, port_override: int | None, dns_resolver: str | None):
        self.relay = Relay(relay_url) if relay_url else None
        self.port = port_override or 25
        self.resolver = dnsutil.resolver(dns_resolver) if dns_resolver else dnsutil.resolver()
        self._cache: dict[str, tuple[float, Route]] = {}

    def route(self, domain: str) -> Route:
        if self.relay is not None:
            return Route([(self.relay.host, self.relay.host, self.relay.port)], relay=True)
        cached = self._cache.get(domain)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        route = self._resolve(domain)
        self._cache[domain] = (time.monotonic() + 300, route)
        return route

    def _resolve(self, domain: str) -> Route:
        try:
            mx = dnsutil.mx_hosts(domain, self.resolver)
        except dns.resolver.NXDOMAIN:
            return Route([], error=Outcome("bounced", 550, "5.1.2", f"Domain {domain} does not exist (NXDOMAIN)"))
        except dns.exception.DNSException as exc:
            return Route([], error=Outcome("deferred", None, "4.4.3", f"DNS lookup of {domain} failed: {exc}"))
        if not mx:
            return Route([], error=Outcome("bounced", 556, "5.1.10",
                                           f"Domain {domain} accepts no mail (null MX, RFC 7505)"))
        hosts = []
        for host in mx[:5]:
            for address in self._addresses(host):
                hosts.append((host, address, self.port))
        if not hosts:
            return Route([], error=Outcome("deferred", None, "4.4.4", f"No address for the MX hosts of {domain}"))
        return Route(hosts)

    def _addresses(self, host: str) -> list[str]:
        try:
            ipaddress.ip_address(host)
            return [host]
        except ValueError:
            pass
        out = []
        for rdtype in ("A", "AAAA"):
            try:
                out += dnsutil.lookup(host, rdtype, self.resolver)
            except dns.exception.DNSException:
                continue
        return out[:2]


class _Connection:
    def __init__(self, smtp: smtplib.SMTP, label: str):
        self.smtp, self.label = smtp, label
        self.used_at = time.monotonic()
        self.messages = 0


class ConnectionPool:
    def __init__(self, helo: str, timeout: float, relay: Relay | None):
        self.helo, self.timeout, self.relay = helo, timeout, relay
        self._conns: dict[tuple[str, int], _Connection] = {}

    def get(self, label: str, address: str, port: int) -> _Connection:
        key = (address, port)
        conn = self._conns.get(key)
        now = time.monotonic()
        if conn is not None and (now - conn.used_at > IDLE_TIMEOUT or conn.messages >= MAX_MESSAGES_PER_CONNECTION):
            self.drop(key)
            conn = None
        if conn is None:
            conn = _Connection(self._open(label, address, port), label)
            self._conns[key] = conn
        conn.used_at = now
        return conn

    def _open(self, label: str, address: str, port: int) -> smtplib.SMTP:
        if self.relay is not None and self.relay.implicit_tls:
            smtp = smtplib.SMTP_SSL(address, port, local_hostname=self.helo, timeout=self.timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(address, port, local_hostname=self.helo, timeout=self.timeout)
        smtp.ehlo()
        if not isinstance(smtp, smtplib.SMTP_SSL) and smtp.has_extn("starttls"):
            if self.relay is not None:
                context = ssl.create_default_context()  # a relay is ours: verify it
            else:
                # Opportunistic TLS to MX hosts (RFC 3207, as Postfix's `may`): encrypt, but an MX
                # certificate is rarely valid for its name, and refusing would only force plain text.
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            smtp.starttls(context=context)
            smtp.ehlo()
        if self.relay is not None and self.relay.username:
            smtp.login(self.relay.username, self.relay.password or "")
        return smtp

    def drop(self, key: tuple[str, int]) -> None:
        conn = self._conns.pop(key, None)
        if conn is not None:
            try:
                conn.smtp.quit()
            except Exception:
                try:
                    conn.smtp.close()
                except Exception:
                    pass

    def close(self) -> None:
        for key in list(self._conns):
            self.drop(key)


@dataclass
class TransactionResult:
    host: str
    outcomes: dict[str, Outcome]  # recipient address → outcome


def send_transaction(pool: ConnectionPool, route: Route, envelope_from: str, recipients: list[str],
                     data: bytes) -> TransactionResult:
    """One message to ``recipients`` (all on one route): try each host in MX order until one answers.

    A host that cannot be reached or drops the session is skipped for the next; recipients the last host
    could not settle are deferred with what it said."""
    if route.error is not None:
        return TransactionResult("", {r: route.error for r in recipients})
    last = Outcome("deferred", None, "4.4.1", "no mail host could be reached")
    last_host = ""
    for label, address, port in route.hosts:
        key = (address, port)
        last_host = label
        for attempt in range(2):  # a pooled connection may have been closed by the server: retry once fresh
            try:
                conn = pool.get(label, address, port)
                result = _transaction(conn, envelope_from, recipients, data)
                conn.messages += 1
                return TransactionResult(label, result)
            except smtplib.SMTPServerDisconnected as exc:
                pool.drop(key)
                last = Outcome("deferred", None, "4.4.2", f"{label}: connection lost ({exc})")
                if attempt == 0:
                    continue
            except smtplib.SMTPResponseException as exc:  # refused at connect/EHLO/STARTTLS/AUTH
                pool.drop(key)
                last = classify(exc.smtp_code, exc.smtp_error)
                if last.status != "deferred" and route.relay:
                    return TransactionResult(label, {r: last for r in recipients})
            except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
                pool.drop(key)
                last = Outcome("deferred", None, "4.4.1", f"{label}: {type(exc).__name__}: {exc}")
            break
    return TransactionResult(last_host, {r: last for r in recipients})


_PLAIN_ADDRESS = re.compile(r"[^<>\s\"(),;:\[\]\\@]+@[^<>\s\"(),;:\[\]\\@]+")


def _quote(address: str) -> str:
    """``<address>`` for MAIL FROM / RCPT TO.  Addresses reaching delivery were validated and normalised
    on the way in, so the usual form needs no parsing (``smtplib.quoteaddr`` runs the RFC 2822 address
    parser: ~100 µs a call, more than the rest of the transaction)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _body(data: bytes) -> bytes:
    """The DATA payload: dot-stuffed (RFC 5321 4.5.2), ending in CRLF, then the lone dot."""
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    return data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n")


def _transaction(conn: _Connection, envelope_from: str, recipients: list[str], data: bytes) -> dict[str, Outcome]:
    smtp = conn.smtp
    if smtp.has_extn("pipelining"):
        # MAIL FROM, every RCPT TO and DATA in one write (RFC 2920: DATA may end a group), then their
        # replies in order: one round trip for the envelope, one for the content.
        lines = [f"MAIL FROM:{_quote(envelope_from)}"] + [f"RCPT TO:{_quote(r)}" for r in recipients] + ["DATA"]
        smtp.send("\r\n".join(lines) + "\r\n")
        mail = smtp.getreply()
        rcpt_replies = [smtp.getreply() for _ in recipients]
        data_reply = smtp.getreply()
    else:
        mail = smtp.mail(envelope_from)
        rcpt_replies = [smtp.rcpt(r) for r in recipients] if mail[0] == 250 else []
        data_reply = None
    code, text = mail
    if code != 250:
        if data_reply is not None and data_reply[0] == 354:  # a server that took DATA anyway: end it empty
            smtp.send(b".\r\n")
            smtp.getreply()
        smtp.rset()
        outcome = classify(code, text)
        return {r: outcome for r in recipients}
    outcomes: dict[str, Outcome] = {}
    accepted = []
    for rcpt, (code, text) in zip(recipients, rcpt_replies):
        if code in (250, 251):
            accepted.append(rcpt)
        else:
            outcomes[rcpt] = classify(code, text)
    if data_reply is None and accepted:
        data_reply = smtp.docmd("data")
    if not accepted or data_reply is None or data_reply[0] != 354:
        if data_reply is not None and data_reply[0] == 354:
            smtp.send(b".\r\n")  # DATA was accepted with no recipient left: send nothing
            smtp.getreply()
        if accepted:  # DATA itself refused: that is every accepted recipient's answer
            outcome = classify(*data_reply)
            for rcpt in accepted:
                outcomes[rcpt] = outcome
        smtp.rset()
        return outcomes
    smtp.send(_body(data))
    code, text = smtp.getreply()
    outcome = classify(code, text)
    for rcpt in accepted:
        outcomes[rcpt] = outcome
    return outcomes


def default_helo() -> str:
    return socket.getfqdn()
