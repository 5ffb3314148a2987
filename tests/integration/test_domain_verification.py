"""Domain verification against a real (local, authoritative) DNS server: the app resolves through
``DNS_RESOLVER``, each record gets its own status, and the domain's status follows the required ones."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from tests.dns_server import dns_server, local_dns  # noqa: F401  (fixtures)


def _create(api, name):
    resp = api.post("/domains", json={"domain": name})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def _records(domain):
    return {r["purpose"]: r for r in domain["records"]}


def _publish(dns, domain, *purposes):
    for purpose, r in _records(domain).items():
        if purposes and purpose not in purposes:
            continue
        value = f"{r['priority']} {r['value']}." if r["type"] == "MX" else r["value"]
        if r["type"] == "CNAME":
            value += "."
        dns.add(r["name"], r["type"], value)


def _verify(api, domain):
    resp = api.post(f"/domains/{domain['id']}/verify")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def _statuses(domain):
    return {p: r["status"] for p, r in _records(domain).items()}


def _verified_events(app, account):
    from app.events.models import Event
    from app.extensions import db
    from app.tenancy import unscoped
    with app.app_context(), unscoped():
        rows = db.session.execute(select(Event).where(
            Event.organization_id == account["organization_id"], Event.type == "domain.verified")).scalars().all()
        return [(e.mode, e.data) for e in rows]


def test_all_published_is_verified_once(api, app, account, local_dns):
    d = _create(api, "acme.example")
    _publish(local_dns, d)
    # Another TXT at the same names must not confuse the checks.
    local_dns.add("pl-bounces.acme.example", "TXT", "google-site-verification=abc")
    body = _verify(api, d)
    assert _statuses(body) == dict.fromkeys(("dkim", "spf", "return_path", "dmarc", "tracking"), "verified")
    assert body["status"] == "verified" and body["fully_verified"] is True
    assert body["verified_at"] and body["last_checked_at"]
    assert all(r["detail"] == "" for r in body["records"])
    # The checks went through the configured resolver.
    asked = set(local_dns.queries)
    assert (f"{d['dkim_selector']}._domainkey.acme.example", "TXT") in asked
    assert ("pl-bounces.acme.example", "MX") in asked

    events = _verified_events(app, account)
    assert events == [("live", {"domain_id": d["id"], "domain": "acme.example", "verified_at": body["verified_at"]})]
    again = _verify(api, d)
    assert again["status"] == "verified" and again["verified_at"] == body["verified_at"]
    assert len(_verified_events(app, account)) == 1  # the first time only
    assert api.get(f"/domains/{d['id']}").get_json() == again


def test_required_only_is_verified_but_not_fully(api, local_dns):
    d = _create(api, "required.example")
    _publish(local_dns, d, "dkim", "spf", "return_path")
    body = _verify(api, d)
    assert body["status"] == "verified" and body["fully_verified"] is False
    assert _statuses(body) == {"dkim": "verified", "spf": "verified", "return_path": "verified",
                               "dmarc": "pending", "tracking": "pending"}
    assert "recommended" in _records(body)["dmarc"]["detail"]


def test_partial_publish_is_pending(api, app, account, local_dns):
    d = _create(api, "partial.example")
    _publish(local_dns, d, "dkim", "dmarc")
    body = _verify(api, d)
    assert body["status"] == "pending" and body["verified_at"] is None
    assert _statuses(body) == {"dkim": "verified", "spf": "pending", "return_path": "pending",
                               "dmarc": "verified", "tracking": "pending"}
    assert "No SPF record" in _records(body)["spf"]["detail"]
    assert _verified_events(app, account) == []
    # Publishing the rest later verifies it.
    _publish(local_dns, d, "spf", "return_path")
    assert _verify(api, d)["status"] == "verified"
    assert len(_verified_events(app, account)) == 1


def test_wrong_dkim_key_fails(api, local_dns):
    d = _create(api, "wrongkey.example")
    _publish(local_dns, d, "spf", "return_path")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    local_dns.add(_records(d)["dkim"]["name"], "TXT", "v=DKIM1; k=rsa; p=" + base64.b64encode(other).decode())
    body = _verify(api, d)
    assert body["status"] == "failed" and _statuses(body)["dkim"] == "failed"
    assert "different DKIM key" in _records(body)["dkim"]["detail"]


def test_dkim_value_split_and_spaced_still_matches(api, local_dns):
    """DNS consoles split long TXT values and people paste them with spaces: the key is what counts."""
    d = _create(api, "spaced.example")
    _publish(local_dns, d, "spf", "return_path")
    value = _records(d)["dkim"]["value"]
    p = value.split("p=", 1)[1]
    local_dns.add(_records(d)["dkim"]["name"], "TXT", f"v=DKIM1;k=rsa;  p={p[:100]} {p[100:]}")
    assert _verify(api, d)["status"] == "verified"


@pytest.mark.parametrize("spf,status", [
    ("v=spf1 include:_spf.google.com include:{ours} ~all", "verified"),
    ("v=spf1 +include:{ours} -all", "verified"),
    ("v=spf1 include:_spf.google.com ~all", "failed"),
    ("v=spf1 include:nested.partner.example ~all", "verified"),  # ours included one level down
    ("v=spf1 redirect=nested.partner.example", "verified"),
    ("v=spf1 -include:{ours} ~all", "failed"),
    ("not spf at all", "pending"),
])
def test_spf_other_includes(api, app, local_dns, spf, status):
    d = _create(api, "spf.example")
    _publish(local_dns, d, "dkim", "return_path")
    ours = app.config["SPF_INCLUDE"]
    local_dns.add("nested.partner.example", "TXT", f"v=spf1 include:{ours} ~all")
    local_dns.add(_records(d)["spf"]["name"], "TXT", spf.format(ours=ours))
    body = _verify(api, d)
    assert _statuses(body)["spf"] == status, _records(body)["spf"]["detail"]
    assert body["status"] == ("verified" if status == "verified" else status)


def test_two_spf_records_fail(api, app, local_dns):
    d = _create(api, "twospf.example")
    _publish(local_dns, d)
    local_dns.add(_records(d)["spf"]["name"], "TXT", "v=spf1 include:other.example ~all")
    body = _verify(api, d)
    assert _statuses(body)["spf"] == "failed" and "only one" in _records(body)["spf"]["detail"]
    assert body["status"] == "failed"


def test_mx_elsewhere_fails(api, local_dns):
    d = _create(api, "mx.example")
    _publish(local_dns, d, "dkim", "spf")
    local_dns.add(_records(d)["return_path"]["name"], "MX", "10 mx.someone-else.example.")
    body = _verify(api, d)
    assert _statuses(body)["return_path"] == "failed"
    assert "mx.someone-else.example" in _records(body)["return_path"]["detail"]


def test_dns_failure_keeps_pending_and_says_so(api, local_dns):
    d = _create(api, "flaky.example")
    _publish(local_dns, d)
    local_dns.fail(_records(d)["dkim"]["name"])
    body = _verify(api, d)
    assert _statuses(body)["dkim"] == "pending" and body["status"] == "pending"
    assert "DNS lookup failed" in _records(body)["dkim"]["detail"]
    # Once verified, a DNS outage does not take verification away.
    local_dns.clear()
    _publish(local_dns, d)
    assert _verify(api, d)["status"] == "verified"
    local_dns.fail(_records(d)["spf"]["name"])
    body = _verify(api, d)
    assert body["status"] == "verified" and "DNS lookup failed" in _records(body)["spf"]["detail"]


def test_unpublishing_takes_verification_away(api, app, account, local_dns):
    from app.domains import service
    from app.errors import UnprocessableError
    from app.tenancy import tenant_scope
    d = _create(api, "revoked.example")
    _publish(local_dns, d)
    assert _verify(api, d)["status"] == "verified"
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        assert service.require_verified_sender("a@revoked.example", "live").id == d["id"]
    local_dns.remove(_records(d)["dkim"]["name"])
    body = _verify(api, d)
    assert body["status"] == "pending" and body["verified_at"]  # first verification is kept as history
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        with pytest.raises(UnprocessableError):
            service.require_verified_sender("a@revoked.example", "live")


def test_unreachable_resolver_is_not_a_500(api, app, monkeypatch):
    """No DNS server at all (a closed port): every record stays pending with the reason."""
    import socket

    from app import dnsutil
    monkeypatch.setattr(dnsutil, "LIFETIME", 0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(app.config, "DNS_RESOLVER", f"127.0.0.1:{port}")
    d = _create(api, "nodns.example")
    body = _verify(api, d)
    assert body["status"] == "pending"
    assert all("DNS lookup failed" in r["detail"] for r in body["records"])


def test_verification_runs_in_one_dns_timeout(api, app, monkeypatch):
    """The five lookups run in parallel, so a dead resolver costs one timeout, not five."""
    import socket
    import time

    from app import dnsutil
    monkeypatch.setattr(dnsutil, "LIFETIME", 1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # bound, never answers
        s.bind(("127.0.0.1", 0))
        monkeypatch.setitem(app.config, "DNS_RESOLVER", f"127.0.0.1:{s.getsockname()[1]}")
        d = _create(api, "slow.example")
        started = time.monotonic()
        body = _verify(api, d)
        elapsed = time.monotonic() - started
    assert body["status"] == "pending" and elapsed < 3.5, elapsed

