"""DNS lookups through one resolver: the system's, or ``DNS_RESOLVER`` (``host:port``, tests run a local
server).  Used by domain verification (TXT, CNAME, MX) and by delivery (MX, then A/AAAA)."""
from __future__ import annotations

import dns.exception
import dns.resolver
from flask import current_app, has_app_context

LIFETIME = 5.0


def resolver(spec: str | None = None) -> dns.resolver.Resolver:
    """A resolver for ``spec`` (``host:port``) or, in an app, for ``DNS_RESOLVER``; else the system's."""
    if spec is None and has_app_context():
        spec = current_app.config.get("DNS_RESOLVER")
    if not spec:
        res = dns.resolver.Resolver()
    else:
        host, _, port = spec.rpartition(":") if spec.count(":") == 1 or spec.startswith("[") else (spec, "", "")
        host = host.strip("[]") or spec
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [host]
        res.port = int(port) if port else 53
    res.lifetime = LIFETIME
    res.timeout = LIFETIME
    return res


def lookup(name: str, rdtype: str, res: dns.resolver.Resolver | None = None) -> list[str]:
    """The records' text, [] when the name or type does not exist.  Raises ``dns.exception.DNSException``
    for a failure to get an answer (timeout, SERVFAIL), which callers report as 'could not check'."""
    res = res or resolver()
    try:
        answer = res.resolve(name, rdtype, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    if answer.rrset is None:
        return []
    if rdtype.upper() == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.to_text() for r in answer]


def mx_hosts(domain: str, res: dns.resolver.Resolver | None = None) -> list[str]:
    """The domain's mail exchangers, most preferred first; the domain itself when it has no MX (implicit
    MX, RFC 5321 section 5.1); [] for a null MX (RFC 7505: the domain accepts no mail)."""
    res = res or resolver()
    try:
        answer = res.resolve(domain, "MX", raise_on_no_answer=False)
    except dns.resolver.NoAnswer:
        return [domain]
    if answer.rrset is None:
        return [domain]
    records = sorted(((r.preference, r.exchange.to_text().rstrip(".")) for r in answer))
    if len(records) == 1 and records[0][1] in ("", "."):
        return []
    return [host for _, host in records if host]


__all__ = ["resolver", "lookup", "mx_hosts", "dns"]
