"""Open and click tracking in outgoing mail (API.md 15): rewrite links, add the pixel.

Framework-light (reads ``current_app.config`` for the base URL only) and fast: a broadcast instruments every
message it sends, so this is two compiled regular expressions and string slicing, no DOM.  Everything that
is not a rewritten link value is kept byte for byte.

Which links are rewritten (``track_clicks``):

- the ``href`` of ``<a>``, ``<area>`` and Outlook's VML buttons (``<v:roundrect href=…>`` inside
  ``<!--[if mso]>`` comments), when it is an absolute ``http(s)://`` URL with a host.  The value is HTML-
  unescaped first (``?a=1&amp;b=2`` is the URL ``?a=1&b=2``), and that real URL goes into the signed token;
- never ``mailto:``, ``tel:``, ``sms:``, ``javascript:``, ``data:``, ``#anchors`` or relative links
  (anything not http(s) is left alone: an allow-list, so no odd spelling of ``javascript:`` slips through);
- never our own unsubscribe / preference links (``<base>/u/…``) or already-tracked ones (``<base>/t/…``);
- never a link whose tag carries ``data-pl-no-track`` (the sender's opt-out for one link);
- in the text part, bare ``http(s)://`` URLs (trailing punctuation and an unbalanced closing bracket are not
  part of the URL), as Postmark does, with the same exclusions.

The open pixel (``track_opens``) is a 1×1 transparent GIF ``<img>`` inserted just before the last
``</body>`` (appended when there is none).

Base URL (``tracking_base``), in order of preference:

1. with ``TRACKING_BRANDED_LINKS=1``, a sending domain whose ``tracking`` DNS record (``pl-track.<domain>``
   CNAME to ``TRACKING_HOST``, see app.domains.service) is verified gets links on its own host,
   ``<scheme>://pl-track.<domain>``, so links match the From domain (better for reputation and for readers
   who hover).  Off by default: with an ``https`` ``BASE_URL`` the operator's TLS terminator must hold a
   certificate for every such name (e.g. Caddy's on-demand TLS), or every tracked link would break;
2. ``TRACKING_HOST`` when it was configured to differ from ``BASE_URL``'s host (a dedicated tracking
   host name, which must route to this app);
3. ``BASE_URL``.

The scheme (and a non-default port) always follows ``BASE_URL``.  The routes answer on any host name.
``TRACKING_BRANDED_LINKS`` (and ``TRACKING_MACHINE_WINDOW``, app.tracking.machine) are read from the app
config, else the environment.
"""
from __future__ import annotations

import html as _html
import os
import re
from urllib.parse import urlsplit

from flask import current_app

from .tokens import click_signer, click_token, is_trackable_url, open_token

# A start tag that can carry a link; quoted attribute values may contain ">".  Outside quotes a tag never
# contains "<", and quoted values are bounded: so a malformed tag (an unclosed quote or bracket) costs a
# bounded scan, never a rescan of the rest of the document per "<a" (linear time on hostile input).
_TAG = re.compile(r"""<(a|area|v:[a-z]+)(?=[\s/>])(?:[^<>"']|"[^"]{0,8192}"|'[^']{0,8192}')*>""", re.IGNORECASE)
# One attribute: name, then optionally = and a double-quoted, single-quoted or unquoted value.
# (An unquoted value runs to whitespace or ">", as browsers parse it, "=" and quotes included.)
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_TEXT_URL = re.compile(r"""https?://[^\s<>"'\x00-\x1f\x7f]+""", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*"
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}

PIXEL_TEMPLATE = ('<img src="{url}" width="1" height="1" alt="" border="0" '
                  'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;">')


def _setting(name: str, default: str) -> str:
    value = current_app.config.get(name)
    if value is None:
        value = os.environ.get(name, default)
    return str(value)


def _flag(name: str, default: bool) -> bool:
    return _setting(name, "1" if default else "0").strip().lower() in ("1", "true", "yes", "on")


def tracking_base(domain=None) -> str:
    """``scheme://host[:port]`` (no trailing slash) for the tracking links of mail sent from ``domain`` (a
    ``Domain`` row or None).  See the module docstring."""
    cfg = current_app.config
    base = cfg["BASE_URL"].rstrip("/")
    parts = urlsplit(base)
    port = f":{parts.port}" if parts.port else ""
    if domain is not None and _flag("TRACKING_BRANDED_LINKS", False):
        for record in domain.records or ():
            if record.get("purpose") == "tracking" and record.get("status") == "verified" and record.get("name"):
                return f"{parts.scheme}://{record['name'].rstrip('.').lower()}{port}"
    host = (cfg.get("TRACKING_HOST") or "").strip().lower()
    if host and host != (parts.hostname or "").lower():
        if ":" in host and not host.startswith("["):  # an IPv6 address
            host = f"[{host}]"
        return f"{parts.scheme}://{host}{port}"
    return base


class Instrumenter:
    """Rewrites one message's content.  Build one per message (cheap); ``own_prefixes`` are the URL
    prefixes of our public pages that must never be rewritten."""

    __slots__ = ("base", "message_id", "recipient_id", "_own", "_tokens", "_signer", "_prefix")

    def __init__(self, base: str, message_id: str, recipient_id: str | None = None,
                 own_prefixes: tuple[str, ...] = ()):
        self.base = base
        self.message_id = message_id
        self.recipient_id = recipient_id
        self._own = tuple({p.lower() for p in (base + "/u/", base + "/t/", *own_prefixes)})
        self._tokens: dict[str, str] = {}
        self._signer = click_signer()
        self._prefix = base + "/t/c/"

    def _tracked(self, url: str) -> str | None:
        """The tracking URL for ``url``, or None when it must stay as it is."""
        if not is_trackable_url(url) or url.lower().startswith(self._own):
            return None
        tracked = self._tokens.get(url)
        if tracked is None:
            tracked = self._tokens[url] = self._prefix + click_token(self.message_id, url, self.recipient_id,
                                                                     self._signer)
        return tracked

    # --- HTML ---

    def _rewrite_tag(self, match: re.Match) -> str:
        tag = match.group(0)
        name_end = match.end(1) - match.start()  # attributes start after the tag name; scan them in order
        href = None
        for attr in _ATTR.finditer(tag, name_end, len(tag) - 1):
            name = attr.group(1).lower()
            if name == "data-pl-no-track":
                return tag
            if name == "href" and href is None:  # browsers use the first href
                href = attr
        if href is None:
            return tag
        for group in (2, 3, 4):
            if href.group(group) is not None:
                raw = href.group(group)
                value_start, value_end = href.span(group)
                break
        else:
            return tag
        url = (_html.unescape(raw) if "&" in raw else raw).strip()
        tracked = self._tracked(url)
        if tracked is None:
            return tag
        return tag[:value_start] + tracked + tag[value_end:]

    def html(self, html: str, *, clicks: bool, opens: bool) -> str:
        if clicks:
            html = _TAG.sub(self._rewrite_tag, html)
        if opens:
            pixel = PIXEL_TEMPLATE.format(url=f"{self.base}/t/o/{open_token(self.message_id, self.recipient_id)}")
            cut = html.lower().rfind("</body>")
            html = html[:cut] + pixel + html[cut:] if cut >= 0 else html + pixel
        return html

    # --- text ---

    def _rewrite_text_url(self, match: re.Match) -> str:
        url = match.group(0)
        tail = ""
        while url:
            last = url[-1]
            if last in _TRAILING:
                url, tail = url[:-1], last + tail
            elif last in _PAIRS and url.count(last) > url.count(_PAIRS[last]):
                url, tail = url[:-1], last + tail
            else:
                break
        tracked = self._tracked(url)
        return (tracked + tail) if tracked is not None else match.group(0)

    def text(self, text: str) -> str:
        return _TEXT_URL.sub(self._rewrite_text_url, text)


def instrument(message_id: str, html: str | None, text: str | None, *, base: str, opens: bool, clicks: bool,
               recipient_id: str | None = None, own_prefixes: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    """``(html, text)`` with click tracking and the open pixel as asked.  ``own_prefixes``: more URL
    prefixes never to rewrite (``BASE_URL/u/`` when the tracking base differs from it)."""
    if not (opens or clicks) or not (html or text):
        return html, text
    inst = Instrumenter(base, message_id, recipient_id, own_prefixes)
    if html:
        html = inst.html(html, clicks=clicks, opens=opens)
    if text and clicks:
        text = inst.text(text)
    return html, text


def own_prefixes() -> tuple[str, ...]:
    """Our public pages on ``BASE_URL`` (unsubscribe, preferences, tracking): never rewritten."""
    base = current_app.config["BASE_URL"].rstrip("/")
    return (base + "/u/", base + "/t/")
