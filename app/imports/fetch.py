"""Fetch a CSV from a customer's URL (e.g. an S3 presigned URL) into storage, guarded by ``app.ssrf``.

The URL is checked (http(s) only, HTTPS in live mode, no credentials, every address public unless
``ALLOW_PRIVATE_URLS``) and the connection goes to the address that was checked.  Redirects are not
followed; the body is streamed to disk up to ``IMPORT_MAX_BYTES`` within one overall deadline."""
from __future__ import annotations

import http.client
import socket
import ssl
import time

from ..ssrf import UnsafeURL, _PinnedHTTP, _PinnedHTTPS, check_url


class FetchError(Exception):
    pass


def fetch_to(url: str, out, *, live: bool, max_bytes: int, timeout: float) -> int:
    """Stream ``url``'s body into the binary file ``out``; returns its size.  ``FetchError`` on any refusal."""
    deadline = time.monotonic() + timeout
    try:
        resolved = check_url(url, live=live)
    except UnsafeURL as exc:
        raise FetchError(exc.message) from None
    conn = (_PinnedHTTPS(resolved, resolved.address, timeout, ssl.create_default_context())
            if resolved.scheme == "https" else _PinnedHTTP(resolved, resolved.address, timeout))
    try:
        conn.request("GET", resolved.target, headers={"Host": resolved.host_header, "Accept": "text/csv, */*",
                                                      "User-Agent": "Postline-Import/1"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise FetchError(f"The URL answered HTTP {resp.status}"
                             + (" (redirects are not followed)." if 300 <= resp.status < 400 else "."))
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise FetchError(f"The file is larger than the limit of {max_bytes} bytes.")
        size = 0
        while True:
            if time.monotonic() > deadline:
                raise FetchError(f"The download did not finish within {timeout:g} s.")
            if conn.sock is not None:
                conn.sock.settimeout(max(0.5, deadline - time.monotonic()))
            chunk = resp.read1(1024 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"The file is larger than the limit of {max_bytes} bytes.")
            out.write(chunk)
        return size
    except socket.timeout:
        raise FetchError(f"The download did not finish within {timeout:g} s.") from None
    except ssl.SSLError as exc:
        raise FetchError(f"TLS failed: {exc}"[:300]) from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"Could not download the file: {exc}"[:300]) from None
    finally:
        conn.close()
