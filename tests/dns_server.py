"""A small authoritative DNS server for tests (dnslib), on 127.0.0.1 and one ephemeral port, UDP and TCP.

Point the app at it with ``DNS_RESOLVER`` (the ``local_dns`` fixture does this), then publish records::

    from tests.dns_server import dns_server, local_dns  # noqa: F401  (import both fixtures)

    def test_something(local_dns):
        local_dns.add("example.com", "MX", "10 mx.example.com.")
        local_dns.add("mx.example.com", "A", "127.0.0.1")
        local_dns.add("example.com", "TXT", "v=spf1 -all")   # long TXT values are split into 255-byte strings

``dns_server`` is session-scoped (one server for the whole run); ``local_dns`` is the same server for one test:
it sets ``app.config["DNS_RESOLVER"]`` to the server's address and clears every record afterwards.

Semantics, as an authoritative server would answer: a name with records of other types only → NOERROR with
no answer (dnspython: ``NoAnswer``); an unknown name → NXDOMAIN; a CNAME answers every type at its name and
is followed when the target is also published here.  ``fail(name)`` makes a name answer SERVFAIL (a broken
upstream, for "could not check" paths).  UDP answers over 512 bytes are truncated (TC), so a resolver
retries over TCP exactly as with real DNS — long DKIM keys go that way.
"""
from __future__ import annotations

import threading

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

TTL = 60
_TYPES = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "MX": MX, "TXT": TXT}


def _key(name: str) -> str:
    return str(DNSLabel(name.rstrip(".") + ".")).lower()


def _rdata(rtype: str, value: str):
    if rtype == "TXT":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
        return TXT(chunks)
    if rtype == "MX":
        pref, _, host = value.strip().partition(" ")
        if not host:  # "host." alone means preference 10
            pref, host = "10", pref
        return MX(host.strip(), int(pref))
    if rtype == "CNAME":
        return CNAME(value)
    return _TYPES[rtype](value)


class _Resolver(BaseResolver):
    def __init__(self):
        self.lock = threading.Lock()
        self.records: dict[str, list[tuple[str, object]]] = {}
        self.failing: set[str] = set()
        self.queries: list[tuple[str, str]] = []

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        key = qname.lower()
        with self.lock:
            self.queries.append((key.rstrip("."), qtype))
            if key in self.failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            name, seen = key, set()
            while True:
                entries = self.records.get(name)
                if entries is None:
                    if name == key:
                        reply.header.rcode = RCODE.NXDOMAIN
                    break
                cnames = [rd for t, rd in entries if t == "CNAME"]
                if cnames and qtype != "CNAME":
                    reply.add_answer(RR(name, QTYPE.CNAME, rdata=cnames[0], ttl=TTL))
                    name = str(cnames[0].label).lower()
                    if name in seen:
                        break
                    seen.add(name)
                    continue
                for rtype, rdata in entries:
                    if qtype in ("ANY", rtype):
                        reply.add_answer(RR(name, getattr(QTYPE, rtype), rdata=rdata, ttl=TTL))
                break
        return reply


class LocalDNS:
    """The server.  ``start()`` binds UDP and TCP on the same free port of 127.0.0.1; ``address`` is the
    ``host:port`` to give ``DNS_RESOLVER``."""

    host = "127.0.0.1"

    def __init__(self):
        self.resolver = _Resolver()
        self._servers: list[DNSServer] = []
        self.port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        """Every ``(name, type)`` asked so far (lower-case, no trailing dot)."""
        with self.resolver.lock:
            return list(self.resolver.queries)

    def start(self) -> LocalDNS:
        logger = DNSLogger(logf=lambda _msg: None)
        for _attempt in range(20):
            udp = DNSServer(self.resolver, address=self.host, port=0, logger=logger)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.resolver, address=self.host, port=port, tcp=True, logger=logger)
            except OSError:  # the TCP side of that port is taken: try another
                udp.server.server_close()
                continue
            self._servers = [udp, tcp]
            self.port = port
            break
        else:
            raise RuntimeError("could not bind a UDP+TCP port for the test DNS server")
        for server in self._servers:
            server.start_thread()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
            server.thread.join(timeout=5)
        self._servers = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def add(self, name: str, rtype: str, value: str) -> None:
        """Publish one record: TXT (any length), MX (``"10 host."``), A, AAAA or CNAME (``"target."``)."""
        rtype = rtype.upper()
        if rtype not in _TYPES:
            raise ValueError(f"unsupported record type {rtype!r}")
        with self.resolver.lock:
            self.resolver.records.setdefault(_key(name), []).append((rtype, _rdata(rtype, value)))

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Withdraw every record at ``name`` (of ``rtype`` only, when given)."""
        with self.resolver.lock:
            key = _key(name)
            if rtype is None:
                self.resolver.records.pop(key, None)
            else:
                kept = [(t, rd) for t, rd in self.resolver.records.get(key, []) if t != rtype.upper()]
                if kept:
                    self.resolver.records[key] = kept
                else:
                    self.resolver.records.pop(key, None)

    def fail(self, name: str) -> None:
        """Make ``name`` answer SERVFAIL (every type) until ``clear()``."""
        with self.resolver.lock:
            self.resolver.failing.add(_key(name))

    def clear(self) -> None:
        with self.resolver.lock:
            self.resolver.records.clear()
            self.resolver.failing.clear()
            self.resolver.queries.clear()


@pytest.fixture(scope="session")
def dns_server():
    """One LocalDNS for the whole session (started lazily, stopped at the end)."""
    server = LocalDNS().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local_dns(app, dns_server, monkeypatch):
    """``dns_server`` for one test: the app resolves through it, and its records are cleared afterwards."""
    monkeypatch.setitem(app.config, "DNS_RESOLVER", dns_server.address)
    dns_server.clear()
    try:
        yield dns_server
    finally:
        dns_server.clear()
