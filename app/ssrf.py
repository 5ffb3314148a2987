"""Outbound HTTP to URLs that customers give us (webhook endpoints, URL imports), guarded against SSRF.

``check_url`` decides whether a URL may be called: http(s) only (HTTPS only in live mode), no credentials
in it, and every address its host resolves to must be public — not private, loopback, link-local,
shared (CGNAT), reserved, multicast or unspecified, including IPv4 addresses hidden in IPv6 forms
(IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo).  ``ALLOW_PRIVATE_URLS`` lifts the
address check (development, tests) but never the HTTPS rule of live mode.

``request`` (and ``Client.request``, which keeps connections alive per checked address) then connects to
the address that was checked — not to whatever the name resolves to a moment later, so there is no
DNS-rebinding window — sending the URL's host in ``Host`` and as the TLS SNI/certificate name.  Redirects
are never followed (a 3xx is just a response), and the whole exchange has one deadline.
"""
from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import ValidationError

MAX_URL_LENGTH = 2048
DEFAULT_TIMEOUT = 10.0
MAX_READ = 64 * 1024  # read (and keep) at most this much of a response; more closes the connection

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValidationError):
    """The URL may not be called."""
    code = "invalid_url"


class RequestFailed(Exception):
    """The request got no HTTP response: ``kind`` is timeout, connection, tls or refused (SSRF guard)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class ResolvedURL:
    url: str
    scheme: str
    host: str  # as given (IDNA-encoded, lower case, no brackets)
    port: int
    target: str  # path + query, what goes on the request line
    addresses: tuple[str, ...]  # every address the host resolved to; all checked

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # at most MAX_READ bytes
    elapsed_ms: int
    address: str
    truncated: bool = False


def _allow_private_default() -> bool:
    try:
        from flask import current_app
        return bool(current_app.config.get("ALLOW_PRIVATE_URLS"))
    except RuntimeError:  # no app context
        return False


def public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for globally routable unicast addresses (IPv4 embedded in IPv6 judged as IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return public_address(embedded)
        if ip.scope_id:
            return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast
                or ip.is_unspecified or not ip.is_global)


def _resolve(host: str, port: int) -> list[str]:
    from flask import current_app, has_app_context

    if has_app_context() and current_app.config.get("DNS_RESOLVER"):
        # The configured resolver (tests run a local one), like every other lookup the app makes.
        return _resolve_with(host, current_app.config["DNS_RESOLVER"])
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise UnsafeURL(f"The host {host!r} could not be resolved.", param="url") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise UnsafeURL(f"The host {host!r} could not be resolved.", param="url")
    return addresses


def _resolve_with(host: str, spec: str) -> list[str]:
    import dns.exception

    from . import dnsutil

    res = dnsutil.resolver(spec)
    addresses: list[str] = []
    try:
        for rdtype in ("A", "AAAA"):
            addresses += dnsutil.lookup(host, rdtype, res)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise UnsafeURL(f"The host {host!r} could not be resolved.", param="url") from exc
    if not addresses:
        raise UnsafeURL(f"The host {host!r} could not be resolved.", param="url")
    return list(dict.fromkeys(addresses))


def check_url(url: str, *, live: bool, allow_private: bool | None = None, param: str = "url") -> ResolvedURL:
    """Parse, check and resolve ``url``; raise ``UnsafeURL`` (a 400 ``invalid_url``) if it may not be called.

    ``live``: HTTPS is required.  ``allow_private`` (default: ``ALLOW_PRIVATE_URLS``) skips the address
    check only.  Resolves the host now: the returned addresses are the ones to connect to."""
    if allow_private is None:
        allow_private = _allow_private_default()
    if not isinstance(url, str) or not url.strip():
        raise UnsafeURL("A URL is required.", param=param)
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"The URL must be at most {MAX_URL_LENGTH} characters.", param=param)
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise UnsafeURL("The URL must not contain spaces or control characters.", param=param)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("The URL is not valid.", param=param) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("The URL must start with https:// (or http:// in test mode).", param=param)
    if live and scheme != "https":
        raise UnsafeURL("Live-mode URLs must use HTTPS.", param=param)
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("The URL must not contain credentials.", param=param)
    if not parts.hostname:
        raise UnsafeURL("The URL has no host.", param=param)
    if port == 0:
        raise UnsafeURL("The URL's port is not valid.", param=param)
    host = parts.hostname.rstrip(".")
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeURL("The URL's host is not a valid name.", param=param) from None
    port = port or (443 if scheme == "https" else 80)
    if literal is not None:
        if "%" in host:
            raise UnsafeURL("The URL must not name a network interface.", param=param)
        addresses = [str(literal)]
    else:
        addresses = _resolve(host, port)
    if not allow_private:
        for address in addresses:
            if not public_address(ipaddress.ip_address(address.split("%", 1)[0])):
                raise UnsafeURL("The URL's host resolves to a private, loopback or otherwise non-public "
                                "address.", param=param)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return ResolvedURL(url=url, scheme=scheme, host=host, port=port, target=target, addresses=tuple(addresses))


# --- connections pinned to the checked address -----------------------------------------------------------

class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, resolved: ResolvedURL, address: str, timeout: float):
        super().__init__(resolved.host, resolved.port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, resolved: ResolvedURL, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(resolved.host, resolved.port, timeout=timeout, context=context)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # SNI and certificate check against the URL's host, while the socket goes to the checked address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Client:
    """Keeps idle connections per (scheme, host, port, checked address); safe to share between threads.

    ``verify_tls=False`` is for tests against a self-signed receiver only."""

    max_idle_per_key: int = 32
    verify_tls: bool = True
    _idle: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pid: int = field(default_factory=os.getpid)
    _context: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context()
            if not self.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context
        return self._context

    def _take(self, key):
        with self._lock:
            if self._pid != os.getpid():  # forked: never share a parent's sockets
                self._idle, self._pid = {}, os.getpid()
            conns = self._idle.get(key)
            return conns.pop() if conns else None

    def _give_back(self, key, conn) -> None:
        with self._lock:
            conns = self._idle.setdefault(key, [])
            if len(conns) < self.max_idle_per_key:
                conns.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def request(self, method: str, url: str | ResolvedURL, *, headers: dict | None = None,
                body: bytes | str | None = None, timeout: float = DEFAULT_TIMEOUT, live: bool = True,
                allow_private: bool | None = None) -> Response:
        """One request, no redirects followed, ``timeout`` seconds for the whole exchange.

        Raises ``RequestFailed`` when no HTTP response came back (``kind='refused'`` when the guard refused
        the URL, e.g. its name now resolves to a private address)."""
        started = time.monotonic()
        deadline = started + timeout
        if isinstance(url, ResolvedURL):
            resolved = url
        else:
            try:
                resolved = check_url(url, live=live, allow_private=allow_private)
            except UnsafeURL as exc:
                raise RequestFailed("refused", exc.message) from None
        if isinstance(body, str):
            body = body.encode()
        address = resolved.address
        key = (resolved.scheme, resolved.host, resolved.port, address)
        send_headers = {"Host": resolved.host_header, "Connection": "keep-alive"}
        send_headers.update(headers or {})
        last_exc: Exception | None = None
        for fresh in (False, True):
            conn = None if fresh else self._take(key)
            reused = conn is not None
            if conn is None:
                remaining = max(0.001, deadline - time.monotonic())
                conn = (_PinnedHTTPS(resolved, address, remaining, self._ssl_context())
                        if resolved.scheme == "https" else _PinnedHTTP(resolved, address, remaining))
            try:
                response = self._exchange(conn, method, resolved.target, send_headers, body, deadline)
            except _StaleConnection as exc:
                conn.close()
                last_exc = exc.__cause__
                if reused:
                    continue  # the server closed an idle keep-alive connection: once more, on a new one
                raise RequestFailed("connection", f"Connection failed: {_describe(last_exc)}") from None
            except socket.timeout:
                conn.close()
                raise RequestFailed("timeout", f"No response within {timeout:g} s.") from None
            except ssl.SSLError as exc:
                conn.close()
                raise RequestFailed("tls", f"TLS failed: {_describe(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise RequestFailed("connection", f"Connection failed: {_describe(exc)}") from None
            response.elapsed_ms = int((time.monotonic() - started) * 1000)
            response.address = address
            if response.truncated or getattr(conn, "_keep", False) is False:
                conn.close()
            else:
                self._give_back(key, conn)
            return response
        raise RequestFailed("connection", f"Connection failed: {_describe(last_exc)}")

    @staticmethod
    def _exchange(conn, method, target, headers, body, deadline) -> Response:
        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            return left

        try:
            if conn.sock is None:
                conn.timeout = remaining()
                conn.connect()
            conn.sock.settimeout(remaining())
            conn.request(method, target, body=body, headers=headers)
            conn.sock.settimeout(remaining())
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                ConnectionAbortedError) as exc:
            raise _StaleConnection() from exc
        chunks, size, truncated = [], 0, False
        while True:
            if conn.sock is not None:
                conn.sock.settimeout(remaining())
            chunk = resp.read1(16384) if size < MAX_READ else b""
            if not chunk:
                truncated = size >= MAX_READ and not resp.isclosed()
                if not truncated:
                    resp.read()  # at the end already: this only lets the response mark itself complete
                break
            chunks.append(chunk)
            size += len(chunk)
        conn._keep = not resp.will_close and resp.isclosed()
        return Response(status=resp.status, headers=[(k, v) for k, v in resp.getheaders()],
                        body=b"".join(chunks)[:MAX_READ], elapsed_ms=0, address="", truncated=truncated)


class _StaleConnection(Exception):
    pass


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return text[:180]


def request(method: str, url: str | ResolvedURL, *, headers: dict | None = None, body: bytes | str | None = None,
            timeout: float = DEFAULT_TIMEOUT, live: bool = True, allow_private: bool | None = None) -> Response:
    """A one-off guarded request (no connection kept).  See ``Client.request``."""
    client = Client(max_idle_per_key=0)
    try:
        return client.request(method, url, headers=headers, body=body, timeout=timeout, live=live,
                              allow_private=allow_private)
    finally:
        client.close()
