"""The SSRF guard: which URLs may be called, and that requests go to the checked address, with the URL's
Host, no redirects followed, and one deadline."""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import ssrf
from app.ssrf import RequestFailed, UnsafeURL, check_url, public_address


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
])
def test_non_public_addresses(address):
    assert not public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_public_addresses(address):
    assert public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/", "https://10.0.0.5:8443/x", "https://[::1]/", "https://[::ffff:127.0.0.1]/",
    "https://169.254.169.254/latest/meta-data", "https://0.0.0.0/", "https://localhost/",
    "https://2130706433/",  # 127.0.0.1 as one decimal number: getaddrinfo understands it
])
def test_live_refuses_private_hosts(url):
    with pytest.raises(UnsafeURL) as exc:
        check_url(url, live=True, allow_private=False)
    assert exc.value.code == "invalid_url" and exc.value.param == "url" and exc.value.status == 400


@pytest.mark.parametrize("url,message", [
    ("http://93.184.216.34/", "HTTPS"),
    ("ftp://93.184.216.34/", "https://"),
    ("https://user:pw@93.184.216.34/", "credentials"),
    ("https:///nohost", "no host"),
    ("https://93.184.216.34:99999/", "not valid"),
    ("https://exa mple.com/", "spaces"),
    ("https://example.com/\r\nX: y", "control"),
    ("", "required"),
    ("https://" + "a" * 2050 + ".com/", "2048"),
])
def test_malformed_or_insecure_urls(url, message):
    with pytest.raises(UnsafeURL) as exc:
        check_url(url, live=True, allow_private=True)
    assert message in exc.value.message


def test_allow_private_lifts_the_address_check_but_not_https():
    assert check_url("https://127.0.0.1:8443/a?b=1", live=True, allow_private=True).addresses == ("127.0.0.1",)
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1/", live=True, allow_private=True)
    resolved = check_url("http://127.0.0.1:8000/a?b=1", live=False, allow_private=True)
    assert (resolved.scheme, resolved.host, resolved.port, resolved.target) == ("http", "127.0.0.1", 8000, "/a?b=1")
    assert resolved.host_header == "127.0.0.1:8000"


def test_test_mode_allows_http_to_public_hosts():
    resolved = check_url("http://93.184.216.34/hook", live=False, allow_private=False)
    assert resolved.address == "93.184.216.34" and resolved.host_header == "93.184.216.34"


def test_a_name_is_refused_if_any_address_is_private(monkeypatch):
    def fake(host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(UnsafeURL):
        check_url("https://mixed.example/", live=True, allow_private=False)


def test_unresolvable_host(monkeypatch):
    def fail(*a, **kw):
        raise socket.gaierror("nope")
    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(UnsafeURL, match="could not be resolved"):
        check_url("https://nowhere.invalid/", live=True, allow_private=False)


def test_default_reads_allow_private_urls_from_the_app(app, monkeypatch):
    with app.app_context():
        assert check_url("https://127.0.0.1/", live=True).address == "127.0.0.1"
        monkeypatch.setitem(app.config, "ALLOW_PRIVATE_URLS", False)
        with pytest.raises(UnsafeURL):
            check_url("https://127.0.0.1/", live=True)


# --- requests ---------------------------------------------------------------------------------------------------

class _Server:
    def __init__(self, handler):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                handler(self)

            do_GET = do_POST

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _reply(h, status, body=b"", headers=()):
    length = int(h.headers.get("Content-Length") or 0)
    if length:
        h.rfile.read(length)
    h.send_response(status)
    for k, v in headers:
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def test_request_connects_to_the_checked_address_with_the_urls_host(monkeypatch):
    seen = []
    server = _Server(lambda h: (seen.append(h.headers["Host"]), _reply(h, 200, b"hello")))
    try:
        # "hooks.example" resolves (here) to 127.0.0.1: the socket goes there, Host says hooks.example.
        real = socket.getaddrinfo

        def fake(host, port, *a, **kw):
            if host == "hooks.example":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
            return real(host, port, *a, **kw)
        monkeypatch.setattr(socket, "getaddrinfo", fake)
        resp = ssrf.request("POST", f"http://hooks.example:{server.port}/in", body=b"{}", live=False,
                            allow_private=True)
        assert (resp.status, resp.body, resp.address) == (200, b"hello", "127.0.0.1")
        assert seen == [f"hooks.example:{server.port}"]
        assert resp.elapsed_ms >= 0
    finally:
        server.close()


def test_a_url_resolving_to_a_private_address_is_refused_at_request_time():
    with pytest.raises(RequestFailed) as exc:
        ssrf.request("POST", "https://127.0.0.1:1/", live=True, allow_private=False)
    assert exc.value.kind == "refused"


def test_redirects_are_not_followed():
    hits = []
    server = _Server(lambda h: (hits.append(h.path), _reply(h, 302, b"", [("Location", "http://169.254.169.254/")])))
    try:
        resp = ssrf.request("POST", f"http://127.0.0.1:{server.port}/", live=False, allow_private=True)
        assert resp.status == 302 and hits == ["/"]
    finally:
        server.close()


def test_one_deadline_for_the_whole_exchange():
    def slow(h):
        h.rfile.read(int(h.headers.get("Content-Length") or 0))
        h.send_response(200)
        h.send_header("Content-Length", "100")
        h.end_headers()
        for _ in range(20):  # drip the body: every read is quick, the whole is not
            time.sleep(0.1)
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return
    server = _Server(slow)
    try:
        started = time.monotonic()
        with pytest.raises(RequestFailed) as exc:
            ssrf.request("POST", f"http://127.0.0.1:{server.port}/", live=False, allow_private=True, timeout=0.5)
        assert exc.value.kind == "timeout" and time.monotonic() - started < 1.5
    finally:
        server.close()


def test_big_responses_are_cut_and_connections_reused():
    server = _Server(lambda h: _reply(h, 200, b"y" * (200 * 1024) if h.path == "/big" else b"small"))
    client = ssrf.Client()
    try:
        big = client.request("POST", f"http://127.0.0.1:{server.port}/big", live=False, allow_private=True)
        assert big.truncated and len(big.body) == ssrf.MAX_READ
        for _ in range(3):
            assert client.request("POST", f"http://127.0.0.1:{server.port}/", live=False,
                                  allow_private=True).body == b"small"
        assert sum(len(v) for v in client._idle.values()) == 1  # one kept-alive connection, reused
    finally:
        client.close()
        server.close()


def test_connection_refused_is_a_failure_not_a_crash():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(RequestFailed) as exc:
        ssrf.request("POST", f"http://127.0.0.1:{port}/", live=False, allow_private=True)
    assert exc.value.kind == "connection"
