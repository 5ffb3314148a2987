"""Domains (API.md 8, email part): create with a fresh DKIM key and the records to publish, list, get, delete,
bad input, duplicates, tenancy, the key encrypted at rest, and the sender gate the delivery worker uses."""
import base64

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers import assert_error


def _create(api, name="example.com"):
    resp = api.post("/domains", json={"domain": name})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def _by_purpose(domain: dict) -> dict:
    return {r["purpose"]: r for r in domain["records"]}


def test_create_returns_the_records_to_publish(api, app):
    d = _create(api, "Mail.Example.COM.")
    assert d["id"].startswith("dom_") and d["object"] == "domain"
    assert d["domain"] == "mail.example.com" and d["status"] == "pending" and d["fully_verified"] is False
    assert d["last_checked_at"] is None and d["verified_at"] is None and d["created_at"].endswith("Z")
    selector = d["dkim_selector"]
    assert selector.startswith("pl") and selector.isalnum() and selector == selector.lower()
    recs = _by_purpose(d)
    assert list(recs) == ["dkim", "spf", "return_path", "dmarc", "tracking"]
    assert all(r["status"] == "pending" for r in d["records"])
    assert [p for p, r in recs.items() if r["required"]] == ["dkim", "spf", "return_path"]

    dkim = recs["dkim"]
    assert (dkim["type"], dkim["name"]) == ("TXT", f"{selector}._domainkey.mail.example.com")
    assert dkim["value"].startswith("v=DKIM1; k=rsa; p=")
    public = serialization.load_der_public_key(base64.b64decode(dkim["value"].split("p=", 1)[1]))
    assert public.key_size == 2048

    host = app.config["INBOUND_MX_HOST"]
    assert recs["spf"]["type"] == "TXT" and recs["spf"]["name"] == "pl-bounces.mail.example.com"
    assert recs["spf"]["value"] == f"v=spf1 include:{app.config['SPF_INCLUDE']} ~all"
    assert recs["return_path"] == {**recs["return_path"], "type": "MX", "name": "pl-bounces.mail.example.com",
                                   "value": host, "priority": 10}
    assert d["return_path"] == "pl-bounces.mail.example.com"
    assert recs["dmarc"]["name"] == "_dmarc.mail.example.com" and recs["dmarc"]["value"].startswith("v=DMARC1;")
    assert recs["tracking"]["type"] == "CNAME" and recs["tracking"]["name"] == "pl-track.mail.example.com"
    assert recs["tracking"]["value"] == app.config["TRACKING_HOST"]

    assert api.get(f"/domains/{d['id']}").get_json() == d


def test_every_domain_gets_its_own_key_and_selector(api):
    a, b = _create(api, "a.example.com"), _create(api, "b.example.com")
    assert _by_purpose(a)["dkim"]["value"] != _by_purpose(b)["dkim"]["value"]
    assert a["dkim_selector"] != b["dkim_selector"]


def test_idn_is_stored_in_ascii(api):
    assert _create(api, "Bücher.example")["domain"] == "xn--bcher-kva.example"


def test_private_key_is_encrypted_at_rest(api, app, account):
    d = _create(api, "secret.example.com")
    from app.crypto import decrypt
    from app.domains.models import Domain
    from app.extensions import db
    from app.tenancy import unscoped
    with app.app_context(), unscoped():
        row = db.session.get(Domain, d["id"])
        stored = row.dkim_private_key
        assert "PRIVATE KEY" not in stored and "MII" not in stored
        pem = decrypt(stored)
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert _by_purpose(d)["dkim"]["value"].endswith(base64.b64encode(der).decode())
    assert "PRIVATE" not in api.get(f"/domains/{d['id']}").get_data(as_text=True)


@pytest.mark.parametrize("bad", [
    "1.2.3.4", "[::1]", "::1", "localhost", "example", "ada@example.com", "https://example.com", "example.com/x",
    "exa mple.com", "ex_ample.com", "-example.com", "example-.com", "example..com", ".example.com",
    "example.123", "example.c", "foo.localhost", "foo.invalid", "x" * 64 + ".com", ("a" * 60 + ".") * 5 + "com",
    "", "   ", "xn--zz.com",
])
def test_bad_domain_names(api, bad):
    assert_error(api.post("/domains", json={"domain": bad}), 400, "invalid_request", "domain")


@pytest.mark.parametrize("body,param", [
    ({}, "domain"), ({"domain": 5}, "domain"), ({"domain": None}, "domain"), ({"domain": ["a.com"]}, "domain"),
    ({"domain": "ok.example.com", "dkim_selector": "x"}, "dkim_selector"),
])
def test_bad_bodies(api, body, param):
    assert_error(api.post("/domains", json=body), 400, "invalid_request", param)


def test_not_json_and_bad_query(api):
    resp = api.post("/domains", data="domain=x.com", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_request")
    assert_error(api.get("/domains?limit=0"), 400, "invalid_request", "limit")
    assert_error(api.get("/domains?limit=abc"), 400, "invalid_request", "limit")
    assert_error(api.get("/domains?status=verified"), 400, "invalid_request", "status")
    assert_error(api.get("/domains?starting_after=dom_nope"), 400, "invalid_request", "starting_after")


def test_duplicate_is_409(api):
    _create(api, "dup.example.com")
    err = assert_error(api.post("/domains", json={"domain": "DUP.example.com."}), 409, "domain_exists", "domain")
    assert err["type"] == "conflict_error"
    assert len([d for d in api.get("/domains").get_json()["data"] if d["domain"] == "dup.example.com"]) == 1


def test_same_domain_in_two_organizations(api, other_api):
    ours, theirs = _create(api, "shared.example.com"), _create(other_api, "shared.example.com")
    assert ours["id"] != theirs["id"] and ours["dkim_selector"] != theirs["dkim_selector"]


def test_list_is_newest_first_and_paged(api):
    ids = [_create(api, f"p{i}.example.com")["id"] for i in range(3)]
    page = api.get("/domains?limit=2").get_json()
    assert page["object"] == "list" and page["url"] == "/api/v1/domains" and page["has_more"] is True
    assert [d["id"] for d in page["data"]] == ids[::-1][:2]
    rest = api.get(f"/domains?limit=2&starting_after={page['data'][-1]['id']}").get_json()
    assert [d["id"] for d in rest["data"]] == [ids[0]] and rest["has_more"] is False


def test_test_key_sees_the_same_domains(api, test_api):
    d = _create(api, "both.example.com")
    assert test_api.get(f"/domains/{d['id']}").status_code == 200
    assert_error(test_api.post("/domains", json={"domain": "both.example.com"}), 409, "domain_exists")


def test_delete(api):
    d = _create(api, "gone.example.com")
    resp = api.delete(f"/domains/{d['id']}")
    assert resp.status_code == 200 and resp.get_json() == {"id": d["id"], "object": "domain", "deleted": True}
    assert_error(api.get(f"/domains/{d['id']}"), 404, "not_found")
    assert_error(api.delete(f"/domains/{d['id']}"), 404, "not_found")
    assert_error(api.post(f"/domains/{d['id']}/verify"), 404, "not_found")
    assert _create(api, "gone.example.com")["id"] != d["id"]  # may be added again, with a new key


def test_other_organizations_domains_are_404(api, other_api):
    theirs = _create(other_api, "theirs.example.com")
    for method, path in (("GET", ""), ("DELETE", ""), ("POST", "/verify")):
        assert_error(api.request(method, f"/domains/{theirs['id']}{path}"), 404, "not_found")
    assert theirs["id"] not in [d["id"] for d in api.get("/domains?limit=100").get_json()["data"]]
    assert_error(api.get(f"/domains?starting_after={theirs['id']}"), 400, "invalid_request", "starting_after")
    assert other_api.get(f"/domains/{theirs['id']}").status_code == 200


def test_scopes(client, account, app):
    from app.apikeys.service import create_key
    from app.extensions import db
    from app.tenancy import tenant_scope
    from tests.helpers import ApiClient
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        _, read_secret = create_key(account["organization_id"], name="r", preset="read")
        _, send_secret = create_key(account["organization_id"], name="s", preset="send")
        db.session.commit()
    reader, sender = ApiClient(client, read_secret), ApiClient(client, send_secret)
    assert reader.get("/domains").status_code == 200
    assert_error(reader.post("/domains", json={"domain": "r.example.com"}), 403, "forbidden")
    assert_error(sender.get("/domains"), 403, "forbidden")


def test_verify_with_nothing_published_is_pending(api, app, monkeypatch):
    from tests.dns_server import LocalDNS
    with LocalDNS() as dns:
        monkeypatch.setitem(app.config, "DNS_RESOLVER", dns.address)
        d = _create(api, "nothing.example.com")
        resp = api.post(f"/domains/{d['id']}/verify")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "pending" and body["fully_verified"] is False and body["last_checked_at"]
    assert {r["status"] for r in body["records"]} == {"pending"}
    assert all(r["detail"] for r in body["records"])


# --------------------------------------------------------------------- the delivery worker's functions

@pytest.fixture
def scope(app, account):
    """An app context with the account's organization in scope (as the delivery job wrapper sets it)."""
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        yield


def _set_status(domain_id, status):
    from sqlalchemy import update

    from app.domains.models import Domain
    from app.extensions import db
    from app.tenancy import unscoped
    with unscoped():
        db.session.execute(update(Domain).where(Domain.id == domain_id).values(status=status))
        db.session.commit()


def test_require_verified_sender(api, scope):
    from app.domains import service
    from app.errors import UnprocessableError
    d = _create(api, "send.example.com")
    for address in ("ada@send.example.com", "ada@unknown.example.com", "no-at-sign", ""):
        with pytest.raises(UnprocessableError) as exc:
            service.require_verified_sender(address, "live")
        assert exc.value.code == "from_not_verified" and exc.value.param == "from" and exc.value.status == 422
    # Test mode sends from anything.
    assert service.require_verified_sender("ada@unknown.example.com", "test") is None
    assert service.require_verified_sender("ada@send.example.com", "test").id == d["id"]

    _set_status(d["id"], "verified")
    assert service.require_verified_sender("Ada <ADA@Send.Example.com>", "live").id == d["id"]
    assert service.domain_for_sender("x@SEND.example.com").id == d["id"]
    assert service.domain_for_sender("x@sub.send.example.com") is None
    _set_status(d["id"], "failed")
    with pytest.raises(UnprocessableError):
        service.require_verified_sender("ada@send.example.com", "live")


def test_sender_gate_never_crosses_tenants(api, other_api, app, other_account):
    from app.domains import service
    from app.errors import UnprocessableError
    from app.tenancy import tenant_scope
    d = _create(api, "mine.example.com")
    with app.app_context():
        _set_status(d["id"], "verified")
        with tenant_scope(other_account["organization_id"], "live"):
            assert service.domain_for_sender("a@mine.example.com") is None
            with pytest.raises(UnprocessableError):
                service.require_verified_sender("a@mine.example.com", "live")


def test_return_path_and_dkim_key_are_cached(api, scope, monkeypatch):
    from app import crypto
    from app.domains import service
    d = _create(api, "cache.example.com")
    domain = service.get_domain(d["id"])
    assert service.return_path_host(domain) == "pl-bounces.cache.example.com"
    calls = []
    real = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda token: calls.append(1) or real(token))
    selector, name, pem = service.dkim_key(domain)
    assert (selector, name) == (d["dkim_selector"], "cache.example.com")
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    for _ in range(100):
        assert service.dkim_key(domain) == (selector, name, pem)
    assert len(calls) == 1


def test_dkim_key_signs_mail_that_verifies_against_the_published_record(api, scope):
    import dkim

    from app.domains import service
    d = _create(api, "signed.example.com")
    record = _by_purpose(d)["dkim"]
    selector, name, pem = service.dkim_key(service.get_domain(d["id"]))
    message = (b"From: Ada <ada@signed.example.com>\r\nTo: bob@example.net\r\nSubject: Hello\r\n"
               b"Message-ID: <1@signed.example.com>\r\n\r\nHi Bob.\r\n")
    signature = dkim.sign(message, selector.encode(), name.encode(), pem,
                          include_headers=[b"From", b"To", b"Subject", b"Message-ID"])
    asked = []

    def dnsfunc(qname, timeout=5):
        asked.append(qname)
        return record["value"].encode() if qname == (record["name"] + ".").encode() else None

    assert dkim.verify(signature + message, dnsfunc=dnsfunc)
    assert asked == [(record["name"] + ".").encode()]
    assert not dkim.verify(signature + message.replace(b"Hi Bob", b"Hi Eve"), dnsfunc=dnsfunc)
