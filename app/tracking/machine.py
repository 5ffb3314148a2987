"""Telling machine opens and clicks from people's (API.md 15).

Security gateways fetch every link and image of a message as it arrives, and some mailbox providers
prefetch images on delivery.  Those fetches are recorded (events are the backbone) but flagged
``"machine": true`` with a ``machine_reason``, and open/click rates leave them out.  A fetch is a machine's
when any of these holds:

``timing``      it comes within ``TRACKING_MACHINE_WINDOW`` seconds (default 10) of the message's delivery:
                no person opens a message and clicks through that fast, scanners do (Microsoft Defender /
                Safe Links detonation, for one, uses an ordinary browser user agent, so only timing and
                its speed betray it).
``user_agent``  the user agent is empty, or names a scanner, link previewer or HTTP library
                (``SCANNER_USER_AGENTS``), or is exactly ``Mozilla/5.0``: the fetcher of Apple Mail Privacy
                Protection, which downloads every image of every message on delivery, read or not.
``head``        a HEAD request (browsers never send one for a link or an image; link checkers do).

Not machines: Gmail's image proxy (``GoogleImageProxy``, ``via ggpht.com``) and Yahoo's (``YahooMailProxy``)
fetch images when the person opens the message, from the provider's servers rather than the reader's
device, so they are real opens (only the IP address and user agent are the proxy's).  Outlook.com's
proxy behaves the same way.
"""
from __future__ import annotations

import os
from datetime import datetime

from flask import current_app

DEFAULT_WINDOW_SECONDS = 10.0

# Lower-case substrings of user agents that are never a person reading.  Keep in step with the docstring.
SCANNER_USER_AGENTS = (
    # Secure email gateways and link-protection services.
    "barracuda", "mimecast", "proofpoint", "ppops-", "messagelabs", "symantec", "ironport", "cisco-secure",
    "trendmicro", "trend micro", "sophos", "fortinet", "fortiguard", "forcepoint", "websense", "zscaler",
    "cloudmark", "spamtitan", "avanan", "mailscanner", "bingpreview", "safelinks", "microsoft-defender",
    "mcafee", "paloalto", "checkpoint", "hornetsecurity", "libraesva", "trustwave",
    # Link previewers and crawlers (a pasted or forwarded link gets unfurled).
    "slackbot", "slack-imgproxy", "twitterbot", "facebookexternalhit", "linkedinbot", "whatsapp",
    "telegrambot", "discordbot", "skypeuripreview", "googlebot", "bingbot", "applebot", "yandexbot",
    "duckduckbot", "baiduspider", "crawler", "spider", "headlesschrome", "phantomjs",
    # HTTP libraries and command-line tools.
    "python-requests", "python-urllib", "python-httpx", "aiohttp", "curl/", "wget/", "go-http-client",
    "okhttp", "java/", "apache-httpclient", "libwww-perl", "node-fetch", "axios/", "httpclient",
    "postmanruntime", "scrapy",
)
# Exactly this and nothing more: Apple Mail Privacy Protection's proxy.
APPLE_MPP_USER_AGENT = "mozilla/5.0"
# Image proxies that fetch when the person opens: real opens, even though they contain "proxy".
HUMAN_PROXIES = ("googleimageproxy", "yahoomailproxy")


def window_seconds() -> float:
    """``TRACKING_MACHINE_WINDOW`` from the app config or the environment (seconds; 0 turns it off)."""
    value = current_app.config.get("TRACKING_MACHINE_WINDOW")
    if value is None:
        value = os.environ.get("TRACKING_MACHINE_WINDOW", DEFAULT_WINDOW_SECONDS)
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return DEFAULT_WINDOW_SECONDS


def user_agent_is_machine(user_agent: str | None) -> bool:
    ua = (user_agent or "").strip().lower()
    if not ua or ua == APPLE_MPP_USER_AGENT:
        return True
    if any(proxy in ua for proxy in HUMAN_PROXIES):
        return False
    return any(marker in ua for marker in SCANNER_USER_AGENTS)


def machine_reason(*, user_agent: str | None, method: str, delivered_at: datetime | None, now: datetime,
                   window: float) -> str | None:
    """``"head" | "user_agent" | "timing"`` for a machine's fetch, None for a person's."""
    if method == "HEAD":
        return "head"
    if user_agent_is_machine(user_agent):
        return "user_agent"
    if delivered_at is not None and window > 0 and (now - delivered_at).total_seconds() < window:
        return "timing"
    return None
