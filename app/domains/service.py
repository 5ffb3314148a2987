"""Sending domains: create (fresh DKIM key, the DNS records to publish), verify by real DNS lookups, delete;
and what the delivery worker asks of a sender's domain (is it verified, its DKIM key, its return path).

Tenant scoping comes from the session (app.tenancy); a domain is shared by live and test mode.

Records and what "verified" means.  Each domain gets five records:

========== ===== ================================ ===================================== =========
purpose    type  name                             value                                 required
========== ===== ================================ ===================================== =========
dkim       TXT   ``<selector>._domainkey.<d>``    ``v=DKIM1; k=rsa; p=<public key>``    yes
spf        TXT   ``pl-bounces.<d>``               ``v=spf1 include:<SPF_INCLUDE> ~all`` yes
return_path MX   ``pl-bounces.<d>``               ``INBOUND_MX_HOST`` (priority 10)     yes
dmarc      TXT   ``_dmarc.<d>``                   ``v=DMARC1; p=none;``                 no
tracking   CNAME ``pl-track.<d>``                 ``TRACKING_HOST``                     no
========== ===== ================================ ===================================== =========

SPF sits on the return-path host, not on ``<d>`` itself: live mail's envelope sender (MAIL FROM) is
``bounces+…@pl-bounces.<d>``, and SPF is evaluated against the MAIL FROM domain (RFC 7208 section 2.4);
it is aligned with ``<d>`` for DMARC in relaxed mode.  A domain is ``verified`` when every required record
is; ``failed`` when a required record conflicts with ours (another DKIM key, an SPF record without our
include, an MX pointing elsewhere); ``pending`` otherwise.  DMARC and tracking are recommended: they show
their own status and make ``fully_verified`` true, but never block sending.
"""
from __future__ import annotations

import ipaddress
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from email.utils import parseaddr

import dns.exception
import idna
from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from .. import crypto, dnsutil
from ..errors import Conflict, NotFound, UnprocessableError, ValidationError
from ..extensions import db
from ..timeutil import rfc3339, utcnow
from . import dkim
from .models import Domain

RETURN_PATH_LABEL = "pl-bounces"
TRACKING_LABEL = "pl-track"
MX_PRIORITY = 10
REQUIRED_PURPOSES = ("dkim", "spf", "return_path")
RECOMMENDED_PURPOSES = ("dmarc", "tracking")
SPF_LOOKUP_LIMIT = 10  # RFC 7208 section 4.6.4: at most 10 DNS-querying terms
DKIM_CACHE_SIZE = 1024

# Names the registries will never delegate: nobody can publish records for them.
_RESERVED_TLDS = {"localhost", "invalid", "local", "internal", "arpa", "onion", "home", "lan", "localdomain"}
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


# ---------------------------------------------------------------------------------------------- names

def normalise_domain(value: str) -> str:
    """The domain in its stored form (lower-case ASCII, IDNA for internationalised names), or ValueError
    saying what is wrong (phrased to follow the field name: "'domain' must …")."""
    raw = (value or "").strip()
    if not raw:
        raise ValueError("must be a domain name such as mail.acme.com.")
    try:
        ipaddress.ip_address(raw.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError("must be a domain name, not an IP address.")
    if any(ch.isspace() for ch in raw):
        raise ValueError("must not contain spaces.")
    if "@" in raw:
        raise ValueError("must be a domain name, not an email address (give the part after '@').")
    if "://" in raw or "/" in raw or ":" in raw:
        raise ValueError("must be a bare domain name such as mail.acme.com, not a URL or address.")
    if raw.endswith("."):
        raw = raw[:-1]
    if not raw.isascii():
        try:
            raw = idna.encode(raw, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError(f"is not a valid internationalised domain name ({exc}).") from None
    name = raw.lower()
    if len(name) > 253:
        raise ValueError("must be at most 253 characters.")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError("must be a domain name, not an IP address.")
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError("must be a full domain name with a dot, such as acme.com.")
    for label in labels:
        if not label:
            raise ValueError("must not contain empty labels ('..').")
        if len(label) > 63:
            raise ValueError("must have labels of at most 63 characters.")
        if not _LABEL.match(label):
            raise ValueError("may contain only letters, digits and hyphens, with no hyphen at the start or "
                             "end of a label.")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                raise ValueError(f"has an invalid internationalised label {label!r}.") from None
    tld = labels[-1]
    if not _TLD.match(tld):
        raise ValueError("must end in a real top-level domain (letters only), such as .com.")
    if tld in _RESERVED_TLDS:
        raise ValueError(f"cannot use the reserved top-level domain .{tld}: nobody can publish DNS for it.")
    return name


def _sender_domain(from_email: str) -> str | None:
    """The normalised domain of an address (``Ada <ada@Acme.com>`` → ``acme.com``), None if there is none."""
    if not from_email:
        return None
    address = parseaddr(from_email)[1] if "<" in from_email else from_email.strip()
    local, at, host = address.rpartition("@")
    if not at or not local:
        return None
    try:
        return normalise_domain(host)
    except ValueError:
        return None


# -------------------------------------------------------------------------------------------- records

def _record(purpose: str, type_: str, name: str, value: str, priority: int | None = None) -> dict:
    return {"purpose": purpose, "type": type_, "name": name, "value": value, "priority": priority,
            "required": purpose in REQUIRED_PURPOSES, "status": "pending", "detail": ""}


def build_records(name: str, selector: str, public_key_b64: str) -> list[dict]:
    """The DNS records a domain publishes, in the order a person should add them."""
    cfg = current_app.config
    bounce_host = f"{RETURN_PATH_LABEL}.{name}"
    tracking_target = cfg["TRACKING_HOST"]
    try:
        ipaddress.ip_address(tracking_target)
        tracking = _record("tracking", "A", f"{TRACKING_LABEL}.{name}", tracking_target)
    except ValueError:  # a host name: the usual case, a CNAME
        tracking = _record("tracking", "CNAME", f"{TRACKING_LABEL}.{name}", tracking_target)
    return [
        _record("dkim", "TXT", f"{selector}._domainkey.{name}", dkim.dkim_record_value(public_key_b64)),
        _record("spf", "TXT", bounce_host, f"v=spf1 include:{cfg['SPF_INCLUDE']} ~all"),
        _record("return_path", "MX", bounce_host, cfg["INBOUND_MX_HOST"], priority=MX_PRIORITY),
        _record("dmarc", "TXT", f"_dmarc.{name}", "v=DMARC1; p=none;"),
        tracking,
    ]


def fully_verified(domain: Domain) -> bool:
    """Every record, required and recommended, verified at the last check."""
    return bool(domain.records) and all(r.get("status") == "verified" for r in domain.records)


def return_path_host(domain: Domain) -> str:
    """The envelope-sender host of live mail from this domain (``pl-bounces.example.com``)."""
    return f"{RETURN_PATH_LABEL}.{domain.domain}"


# ------------------------------------------------------------------------------------- create/read

def create_domain(name: str) -> Domain:
    """Add a sending domain with a fresh RSA-2048 DKIM key (private key encrypted at rest) and its records,
    status ``pending``.  Raises ValidationError for a bad name, Conflict ``domain_exists`` for a duplicate."""
    try:
        name = normalise_domain(name)
    except ValueError as exc:
        raise ValidationError(f"'domain' {exc}", param="domain") from None
    if _find(name) is not None:
        raise _exists(name)
    pem, public_key = dkim.generate_keypair()
    selector = dkim.new_selector()
    domain = Domain(domain=name, status="pending", dkim_selector=selector,
                    dkim_private_key=crypto.encrypt(pem.decode("ascii")), dkim_public_key=public_key,
                    records=build_records(name, selector, public_key))
    try:
        with db.session.begin_nested():
            db.session.add(domain)
    except IntegrityError:  # lost a race with an identical request: the unique constraint has the last word
        raise _exists(name) from None
    return domain


def _exists(name: str) -> Conflict:
    return Conflict(f"The domain {name} is already added to this organization.", code="domain_exists",
                    param="domain")


def _find(name: str) -> Domain | None:
    return db.session.execute(select(Domain).where(Domain.domain == name)).scalar_one_or_none()


def get_domain(domain_id: str) -> Domain:
    domain = db.session.get(Domain, domain_id)
    if domain is None:
        raise NotFound("No such domain.", param="id")
    return domain


def list_domains_query():
    return select(Domain)


def delete_domain(domain_id: str) -> str:
    """Delete the domain and its key; live sends from it are refused from now on."""
    domain = get_domain(domain_id)
    db.session.execute(delete(Domain).where(Domain.id == domain.id))
    _forget_key(domain.id)
    return domain.id


# ---------------------------------------------------------------------------------------- verifying

def _check(record: dict, res) -> tuple[str, str]:
    """``(status, detail)`` of one record from DNS.  DNS failures propagate as DNSException."""
    purpose, name, value = record["purpose"], record["name"], record["value"]
    if purpose == "dkim":
        texts = dnsutil.lookup(name, "TXT", res)
        if not texts:
            return "pending", f"No TXT record at {name} yet."
        ours = dkim.tags(value)["p"]
        keys = [dkim.tags(t).get("p", "") for t in texts if dkim.is_dkim_key_record(t)]
        if ours in keys:
            return "verified", ""
        if keys:
            return "failed", f"{name} publishes a different DKIM key: replace it with the value shown."
        return "failed", f"The TXT record at {name} is not a DKIM key: replace it with the value shown."
    if purpose == "spf":
        include = value.split("include:", 1)[1].split()[0]
        spf = [t for t in dnsutil.lookup(name, "TXT", res) if dkim.is_spf(t)]
        if not spf:
            return "pending", f"No SPF record (v=spf1 …) at {name} yet."
        if len(spf) > 1:
            return "failed", (f"{name} has {len(spf)} SPF records; a name may have only one (RFC 7208): merge "
                              f"them into one that includes {include}.")
        if _spf_includes(spf[0], include, res, [SPF_LOOKUP_LIMIT]):
            return "verified", ""
        return "failed", f"The SPF record at {name} does not include {include}: add include:{include}."
    if purpose == "return_path":
        hosts = [a.split()[-1].rstrip(".").lower() for a in dnsutil.lookup(name, "MX", res)]
        if not hosts:
            return "pending", f"No MX record at {name} yet."
        if value.lower() in hosts:
            return "verified", ""
        return "failed", f"The MX record at {name} points at {', '.join(hosts)}, not {value}."
    if purpose == "dmarc":
        found = [t for t in dnsutil.lookup(name, "TXT", res) if t.strip().lower().startswith("v=dmarc1")]
        if not found:
            return "pending", f"No DMARC record at {name} yet (recommended)."
        if len(found) > 1:
            return "failed", f"{name} has {len(found)} DMARC records; receivers ignore them all: keep one."
        if "p" not in dkim.tags(found[0]):
            return "failed", f"The DMARC record at {name} has no policy (p=)."
        return "verified", ""
    if purpose == "tracking":
        rtype = record["type"]
        found = [t.rstrip(".").lower() for t in dnsutil.lookup(name, rtype, res)]
        if not found:
            return "pending", f"No {rtype} record at {name} yet (recommended, for branded tracking links)."
        if value.lower() in found:
            return "verified", ""
        return "failed", f"The {rtype} record at {name} points at {', '.join(found)}, not {value}."
    return "pending", ""


def _spf_includes(text: str, include: str, res, budget: list[int], depth: int = 0) -> bool:
    """Whether an SPF record passes mail for ``include`` directly or through nested include:/redirect=,
    within the RFC's budget of 10 DNS lookups."""
    nested = []
    for term in dkim.spf_terms(text):
        qualifier = term[0] if term[:1] in "+-~?" else ""
        mech = term[len(qualifier):]
        if mech.startswith("include:"):
            target = mech[len("include:"):].rstrip(".")
            if target == include and qualifier in ("", "+"):
                return True
            nested.append(target)
        elif mech.startswith("redirect="):
            nested.append(mech[len("redirect="):].rstrip("."))
    if depth >= 5:
        return False
    for target in nested:
        if budget[0] <= 0 or "%" in target:  # out of lookups, or a macro we do not expand
            continue
        budget[0] -= 1
        for child in dnsutil.lookup(target, "TXT", res):
            if dkim.is_spf(child) and _spf_includes(child, include, res, budget, depth + 1):
                return True
    return False


def check_records(records: list[dict], res=None) -> list[dict]:
    """The records with ``status`` and ``detail`` from a fresh look at DNS (lookups run in parallel, so a
    check takes one DNS timeout at worst).  A lookup that fails (timeout, SERVFAIL) keeps a verified record
    verified and leaves any other pending, saying so: an outage of DNS is not the customer's mistake."""
    res = res or dnsutil.resolver()

    def one(record: dict) -> dict:
        out = dict(record)
        try:
            out["status"], out["detail"] = _check(record, res)
        except (dns.exception.DNSException, OSError) as exc:  # timeout, SERVFAIL, network unreachable
            out["status"] = "verified" if record.get("status") == "verified" else "pending"
            out["detail"] = f"Could not check {record['name']}: DNS lookup failed ({type(exc).__name__}); " \
                            "will check again."
        return out

    with ThreadPoolExecutor(max_workers=len(records) or 1, thread_name_prefix="dns-check") as pool:
        return list(pool.map(one, records))


def domain_status(records: list[dict]) -> str:
    required = [r for r in records if r.get("required", r["purpose"] in REQUIRED_PURPOSES)]
    statuses = {r["status"] for r in required}
    if required and statuses == {"verified"}:
        return "verified"
    if "failed" in statuses:
        return "failed"
    return "pending"


def verify_domain(domain_id: str) -> Domain:
    """Look every record up in DNS (``DNS_RESOLVER`` when set) and store each one's status and the domain's.
    The first time the domain becomes verified, ``verified_at`` is set and a ``domain.verified`` event is
    recorded (live mode) — exactly once, even when checks race: a conditional UPDATE decides."""
    domain = get_domain(domain_id)
    records = check_records(list(domain.records or []))
    now = utcnow()
    domain.records = records
    domain.status = domain_status(records)
    domain.last_checked_at = now
    db.session.flush()
    if domain.status == "verified" and domain.verified_at is None:
        won = db.session.execute(
            update(Domain).where(Domain.id == domain.id, Domain.verified_at.is_(None)).values(verified_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if won:
            set_committed_value(domain, "verified_at", now)
            from ..events.service import record_events
            record_events([{"type": "domain.verified", "organization_id": domain.organization_id, "mode": "live",
                            "data": {"domain_id": domain.id, "domain": domain.domain,
                                     "verified_at": rfc3339(now)}}])
        else:
            db.session.refresh(domain, ["verified_at"])
    return domain


# ------------------------------------------------------------------------------ for the delivery worker

def domain_for_sender(from_email: str) -> Domain | None:
    """The organization's domain row for the part after '@' of ``from_email`` (case-insensitive, IDNA), or
    None."""
    name = _sender_domain(from_email)
    return _find(name) if name else None


def require_verified_sender(from_email: str, mode: str) -> Domain | None:
    """The sender's domain.  In live mode it must exist and be verified, else UnprocessableError
    ``from_not_verified`` (param ``from``); test mode sends from anything (returns None without a domain)."""
    domain = domain_for_sender(from_email)
    if mode != "live" or (domain is not None and domain.status == "verified"):
        return domain
    name = _sender_domain(from_email)
    if name is None:
        message = "The from address has no domain that could be verified."
    elif domain is None:
        message = (f"The from address is not on a verified domain: add {name} under Domains, publish its DNS "
                   "records and verify it.")
    else:
        message = (f"The from address is not on a verified domain: {name} is {domain.status}; publish its DNS "
                   "records and verify it.")
    raise UnprocessableError(message, code="from_not_verified", param="from")


_key_cache: OrderedDict[tuple[str, str], tuple[str, str, bytes]] = OrderedDict()
_key_lock = threading.Lock()


def dkim_key(domain: Domain) -> tuple[str, str, bytes]:
    """``(selector, domain name, private key PEM)`` for signing.  Decrypted once per (domain, selector) and
    kept in a small process-wide LRU: the worker signs thousands of messages a second and must not run
    Fernet for each.  A new selector (key rotation) is a new cache entry."""
    cache_key = (domain.id, domain.dkim_selector)
    with _key_lock:
        hit = _key_cache.get(cache_key)
        if hit is not None:
            _key_cache.move_to_end(cache_key)
            return hit
    value = (domain.dkim_selector, domain.domain, crypto.decrypt(domain.dkim_private_key).encode("ascii"))
    with _key_lock:
        _key_cache[cache_key] = value
        _key_cache.move_to_end(cache_key)
        while len(_key_cache) > DKIM_CACHE_SIZE:
            _key_cache.popitem(last=False)
    return value


def _forget_key(domain_id: str) -> None:
    with _key_lock:
        for key in [k for k in _key_cache if k[0] == domain_id]:
            del _key_cache[key]
