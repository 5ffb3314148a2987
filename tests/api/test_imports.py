"""Imports and exports: POST /contacts/import, POST /imports (upload and URL), GET /contacts/export."""
from __future__ import annotations

import csv
import http.server
import io
import threading

import pytest

from tests.helpers import assert_error


def _tenant_scope(account, mode="live"):
    from app.tenancy import tenant_scope
    return tenant_scope(account["organization_id"], mode)


def _make_list(app, account, list_type="static"):
    from app.extensions import db
    from app.lists.models import ContactList
    with app.app_context(), _tenant_scope(account):
        lst = ContactList(name="Imported", list_type=list_type, metadata_={},
                          segment_rules={"tags": ["x"]} if list_type == "dynamic" else None)
        db.session.add(lst)
        db.session.commit()
        return lst.id


def _run(app, account, task, job_id, mode="live", **kw):
    with app.app_context():
        return task(job_id, tenant=(account["organization_id"], mode), **kw)


def _contacts(api, **params):
    out, after = [], None
    while True:
        q = "&".join([f"limit=100"] + [f"{k}={v}" for k, v in params.items()]
                     + ([f"starting_after={after}"] if after else []))
        body = api.get(f"/contacts?{q}").get_json()
        out += body["data"]
        if not body["has_more"]:
            return out
        after = body["data"][-1]["id"]


# --- POST /contacts/import ---------------------------------------------------------------------------------

def test_sync_import_of_10000_rows_with_bad_rows(fast_api):
    rows = [{"email": f"Person{i}@Example.com", "first_name": f"P{i}", "tags": ["bulk"],
             "attributes": {"n": i}} for i in range(10_000)]
    bad = {17: {"email": "not-an-email"}, 4242: {"phone_number": "12345"}, 9999: {"email": "x@y.com", "nope": 1},
           5000: {"first_name": "no address"}, 6000: "a string"}
    for index, row in bad.items():
        rows[index] = row
    resp = fast_api.post("/contacts/import", json={"contacts": rows})
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert body["imported"] == 10_000 - len(bad) and body["updated"] == 0 and body["failed"] == len(bad)
    errors = {e["index"]: e for e in body["errors"]}
    assert sorted(errors) == sorted(bad)
    assert errors[17]["code"] == "invalid_email" and errors[17]["param"] == "email"
    assert errors[4242]["code"] == "invalid_phone" and errors[4242]["param"] == "phone_number"
    assert errors[9999]["param"] == "nope"
    assert errors[5000]["param"] == "email"
    one = fast_api.get("/contacts?email=person123@example.com").get_json()["data"]
    assert one[0]["email"] == "person123@example.com" and one[0]["attributes"] == {"n": 123}
    # The same again: every valid row is now an update.
    again = fast_api.post("/contacts/import", json={"contacts": rows}).get_json()
    assert again["imported"] == 0 and again["updated"] == 10_000 - len(bad)


@pytest.mark.parametrize("copy_threshold", [10_000, 0], ids=["values", "copy"])
def test_sync_import_follows_upsert_rules(api, monkeypatch, copy_threshold):
    """Both write paths (multi-row VALUES; on PostgreSQL also COPY into a temp table + INSERT … SELECT)."""
    from app.imports import service
    monkeypatch.setattr(service, "COPY_THRESHOLD", copy_threshold)
    api.post("/contacts", json={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
                                "attributes": {"plan": "pro", "old": 1}, "tags": ["a"],
                                "consent": {"email": "subscribed"}})
    api.post("/contacts", json={"phone_number": "+14155550100", "first_name": "Phone only"})
    resp = api.post("/contacts/import", json={"contacts": [
        {"email": "ADA@example.com", "attributes": {"old": None, "new": "x"}, "tags": ["b"]},
        {"phone_number": "+14155550100", "last_name": "Matched"},
        {"email": "dup@example.com", "first_name": "First"},
        {"email": "Dup@example.com", "last_name": "Second", "consent": {"sms": True}},
        {"email": "new@example.com", "attributes": {"gone": None, "kept": True}},
    ]})
    body = resp.get_json()
    assert (body["imported"], body["updated"], body["skipped"], body["errors"]) == (2, 3, 0, []), body
    ada = api.get("/contacts?email=ada@example.com").get_json()["data"][0]
    assert ada["first_name"] == "Ada" and ada["last_name"] == "Lovelace"  # not named: kept
    assert ada["attributes"] == {"plan": "pro", "new": "x"} and ada["tags"] == ["b"]
    assert ada["consent"] == {"email": "subscribed", "sms": "unknown"}
    phones = [c for c in _contacts(api) if c["phone_number"] == "+14155550100"]
    assert len(phones) == 1 and phones[0]["first_name"] == "Phone only" and phones[0]["last_name"] == "Matched"
    dup = api.get("/contacts?email=dup@example.com").get_json()["data"][0]
    assert (dup["first_name"], dup["last_name"], dup["consent"]["sms"]) == ("First", "Second", "subscribed")
    new = api.get("/contacts?email=new@example.com").get_json()["data"][0]
    assert new["attributes"] == {"kept": True}


def test_copy_path_keeps_awkward_text(api, monkeypatch):
    from app.imports import service
    monkeypatch.setattr(service, "COPY_THRESHOLD", 0)
    awkward = "tab\there\nnew\\N back\\slash \r \"q\" ü 😀"
    body = api.post("/contacts/import", json={"contacts": [
        {"email": "awk@example.com", "first_name": "\\N", "last_name": awkward[:100],
         "attributes": {"k\t": awkward, "n": 1.5, "b": False}, "tags": ["a\\b", "c\td"],
         "metadata": {"m": awkward}}]}).get_json()
    assert body["imported"] == 1, body
    c = api.get("/contacts?email=awk@example.com").get_json()["data"][0]
    assert c["first_name"] == "\\N" and c["last_name"] == awkward[:100]
    assert c["attributes"] == {"k\t": awkward, "n": 1.5, "b": False} and c["tags"] == ["a\\b", "c\td"]
    assert c["metadata"] == {"m": awkward}


def test_sync_import_records_contact_events(app, api, account):
    from sqlalchemy import func, select

    from app.events.models import Event
    api.post("/contacts/import", json={"contacts": [{"email": "ev1@example.com"}, {"email": "ev2@example.com"}]})
    api.post("/contacts/import", json={"contacts": [{"email": "ev1@example.com", "first_name": "E"}]})
    with app.app_context(), _tenant_scope(account):
        from app.extensions import db
        counts = dict(db.session.execute(select(Event.type, func.count()).group_by(Event.type)).all())
        data = db.session.execute(select(Event.data).where(Event.type == "contact.updated")).scalar_one()
    assert counts == {"contact.created": 2, "contact.updated": 1}
    assert data["email"] == "ev1@example.com" and data["first_name"] == "E" and data["object"] == "contact"


def test_contact_events_carry_the_contact_as_the_api_shows_it(app, api, account, monkeypatch):
    """The events' data is the contact as ``GET /contacts/{id}`` shows it (on PostgreSQL the database builds
    it), and the listeners (webhooks) get exactly the rows written."""
    from sqlalchemy import select

    from app.events import service as events_service
    from app.events.models import Event
    seen = []
    monkeypatch.setattr(events_service, "_LISTENERS", [*events_service._LISTENERS, seen.extend])
    from app.imports import service
    monkeypatch.setattr(service, "_LISTENERS", events_service._LISTENERS)
    api.post("/contacts/import", json={"contacts": [
        {"email": "shape@example.com", "first_name": "S", "attributes": {"plan": "pro", "gone": None, "n": 2.5},
         "tags": ["t1"], "consent": {"email": "subscribed"}, "metadata": {"m": "x"}, "timezone": "Europe/Paris"},
        {"phone_number": "+14155550123", "last_name": "Phone"}]})
    api.post("/contacts/import", json={"contacts": [{"email": "shape@example.com", "locale": "fr"}]})
    with app.app_context(), _tenant_scope(account):
        from app.extensions import db
        stored = db.session.execute(select(Event.id, Event.type, Event.contact_id, Event.recipient, Event.data)
                                    .where(Event.type.in_(("contact.created", "contact.updated")))).all()
    assert sorted(e["type"] for e in seen) == ["contact.created", "contact.created", "contact.updated"]
    by_id = {e["id"]: e for e in seen}
    for row in stored:
        heard = by_id[row.id]
        assert (heard["type"], heard["contact_id"], heard["recipient"], heard["data"]) == (
            row.type, row.contact_id, row.recipient, row.data)
        shown = api.get(f"/contacts/{row.contact_id}").get_json()
        if row.type == "contact.updated" or row.data.get("phone_number"):
            assert {k: shown[k] for k in row.data} == row.data
    created = next(r.data for r in stored if r.type == "contact.created" and r.data["email"])
    assert created["attributes"] == {"plan": "pro", "n": 2.5} and created["consent"] == {
        "email": "subscribed", "sms": "unknown"}
    assert created["created_at"].endswith("Z") and created["object"] == "contact"


@pytest.mark.parametrize("copy_threshold", [10_000, 0], ids=["values", "copy"])
def test_erased_addresses_are_skipped_and_reported(app, api, account, monkeypatch, copy_threshold):
    from app.imports import service
    monkeypatch.setattr(service, "COPY_THRESHOLD", copy_threshold)
    from app.extensions import db
    from app.suppressions.models import Suppression
    with app.app_context(), _tenant_scope(account):
        db.session.add(Suppression(channel="email", recipient="gone@example.com", reason="erased"))
        db.session.commit()
    body = api.post("/contacts/import", json={"contacts": [{"email": "Gone@Example.com"},
                                                          {"email": "here@example.com"}]}).get_json()
    assert (body["imported"], body["skipped"], body["failed"]) == (1, 1, 0)
    assert body["errors"] == [{"index": 0, "code": "contact_erased", "param": "email",
                               "message": body["errors"][0]["message"]}]
    assert api.get("/contacts?email=gone@example.com").get_json()["data"] == []


def test_update_existing_false_skips_existing(api):
    api.post("/contacts", json={"email": "keep@example.com", "first_name": "Keep"})
    body = api.post("/contacts/import", json={"contacts": [{"email": "keep@example.com", "first_name": "Changed"},
                                                          {"email": "fresh@example.com"}],
                                             "update_existing": False}).get_json()
    assert (body["imported"], body["updated"], body["skipped"]) == (1, 0, 1)
    assert api.get("/contacts?email=keep@example.com").get_json()["data"][0]["first_name"] == "Keep"


def test_import_into_a_static_list(app, api, account):
    from sqlalchemy import select

    from app.lists.models import ListMember
    list_id = _make_list(app, account)
    api.post("/contacts", json={"email": "already@example.com"})
    body = api.post("/contacts/import", json={"list_id": list_id, "contacts": [
        {"email": "already@example.com"}, {"email": "m1@example.com"}, {"email": "m2@example.com"}]}).get_json()
    assert body["imported"] == 2 and body["updated"] == 1
    api.post("/contacts/import", json={"list_id": list_id, "contacts": [{"email": "m1@example.com"}]})
    with app.app_context(), _tenant_scope(account):
        from app.extensions import db
        members = db.session.execute(select(ListMember.contact_id).where(ListMember.list_id == list_id)).all()
    assert len(members) == 3
    assert_error(api.post("/contacts/import", json={"list_id": "list_nope", "contacts": [{"email": "a@b.co"}]}),
                 404, "not_found", "list_id")
    dynamic = _make_list(app, account, "dynamic")
    assert_error(api.post("/contacts/import", json={"list_id": dynamic, "contacts": [{"email": "a@b.co"}]}),
                 422, "dynamic_list", "list_id")


def test_sync_import_body_validation(api):
    assert_error(api.post("/contacts/import", json={}), 400, "invalid_request", "contacts")
    assert_error(api.post("/contacts/import", json={"contacts": []}), 400, "invalid_request", "contacts")
    assert_error(api.post("/contacts/import", json={"contacts": [{}] * 10_001}), 400, "invalid_request", "contacts")
    assert_error(api.post("/contacts/import", json={"contacts": [{"email": "a@b.co"}], "extra": 1}),
                 400, "invalid_request", "extra")
    assert_error(api.post("/contacts/import", json={"contacts": [{"email": "a\x00@b.co"}]}), 400, "invalid_request")


def test_static_paths_win_over_contact_ids(api):
    """POST /contacts/import and GET /contacts/export reach this blueprint, not /contacts/<contact_id>."""
    assert api.post("/contacts/import", json={"contacts": [{"email": "route@example.com"}]}).status_code == 200
    assert api.get("/contacts/export").get_json()["object"] == "job"
    assert_error(api.post("/contacts/export", json={}), 405, "method_not_allowed")
    # The contacts blueprint's `/contacts/<oid("con"):contact_id>` never takes "import" as an id.
    assert_error(api.get("/contacts/import"), 405, "method_not_allowed")
    assert "POST" in api.get("/contacts/import").headers["Allow"]


def test_other_tenants_and_modes_are_untouched(api, test_api, other_api):
    api.post("/contacts/import", json={"contacts": [{"email": "shared@example.com", "first_name": "Live"}]})
    body = test_api.post("/contacts/import", json={"contacts": [{"email": "shared@example.com"}]}).get_json()
    assert body["imported"] == 1  # test mode is another audience
    assert other_api.post("/contacts/import", json={"contacts": [{"email": "shared@example.com"}]}
                          ).get_json()["imported"] == 1
    assert api.get("/contacts?email=shared@example.com").get_json()["data"][0]["first_name"] == "Live"


# --- the fast CSV validator agrees with the contacts schema ---------------------------------------------------

AGREEMENT_ROWS = [
    {"email": "Plain.User+tag@Example.COM"}, {"email": "user@sub.example.co.uk", "first_name": "A" * 100},
    {"email": "user@localhost"}, {"email": "user@example"}, {"email": "a..b@example.com"},
    {"email": "ünï@example.com"}, {"email": "user@xn--bcher-kva.example"}, {"email": "user@exa_mple.com"},
    {"email": "\"quoted\"@example.com"}, {"email": "x" * 65 + "@example.com"}, {"email": "user@123.123"},
    {"email": "user@example.invalid"}, {"email": "user@simulator.test"}, {"email": "user@example.com."},
    {"email": "a@b.co", "first_name": "A" * 101}, {"email": "a@b.co", "external_id": "x" * 201},
    {"email": "a@b.co", "tags": ["a", "b"]}, {"email": "a@b.co", "tags": ["x" * 101]},
    {"email": "a@b.co", "consent": {"email": True, "sms": "unsubscribed"}}, {"email": "a@b.co", "consent": {"email": "maybe"}},
    {"email": "a@b.co", "timezone": "Europe/Paris"}, {"email": "a@b.co", "timezone": "Mars/Olympus"},
    {"email": "a@b.co", "locale": "fr-FR"}, {"email": "a@b.co", "locale": "x" * 36},
    {"email": "a@b.co", "attributes": {"plan": "pro"}}, {"email": "a@b.co", "attributes": {"k": "v" * 1001}},
    {"email": "a@b.co", "attributes": {f"k{i}": "v" for i in range(101)}},
    {"phone_number": "+14155550123"}, {"phone_number": "+1415555"}, {"phone_number": "4155550123"},
    {"phone_number": "+44 20 7946 0958", "email": "b@c.de"}, {"first_name": "nobody"},
]


@pytest.mark.parametrize("raw", AGREEMENT_ROWS)
def test_fast_validator_agrees_with_the_schema(app, raw):
    from app.imports.rows import RowError, fast_validate, validate_row

    def answer(fn):
        try:
            return ("ok", fn(dict(raw)))
        except RowError as err:
            return ("error", err.code, err.param, err.message)

    assert answer(fast_validate) == answer(validate_row)


def test_csv_mapping():
    from app.imports.rows import HeaderError, csv_record_to_input, header_map
    cols = header_map(["\ufeffEmail", "Phone", "tags", "consent_email", "attributes.plan", "Company", "id", ""])
    raw = csv_record_to_input(cols, ["a@b.co", "'+14155550123", "vip; news;vip", "yes", "pro", "Acme", "con_1", "x"])
    assert raw == {"email": "a@b.co", "phone_number": "+14155550123", "tags": ["vip", "news"],
                   "consent": {"email": True}, "attributes": {"plan": "pro", "Company": "Acme"}}
    assert csv_record_to_input(cols, ["a@b.co", "", "", "", "", "", "", ""]) == {"email": "a@b.co"}
    with pytest.raises(HeaderError):
        header_map(["name", "company"])


# --- POST /imports (CSV upload / URL) and GET /contacts/export ----------------------------------------------

def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode()


def _upload(api, data: bytes, **fields):
    form = {"file": (io.BytesIO(data), "contacts.csv", "text/csv"), **fields}
    return api.client.post("/api/v1/imports", data=form, content_type="multipart/form-data",
                           headers={"Authorization": f"Bearer {api.key}"})


def test_csv_upload_import_job(app, api, account):
    from app.imports.tasks import import_contacts_csv
    body = "\ufeff".encode() + _csv(
        [["email", "first_name", "tags", "consent_email", "plan"]]
        + [[f"csv{i}@example.com", f"N{i}", "a;b", "true", "pro"] for i in range(25)]
        + [["broken", "X", "", "", ""], ["", "no address", "", "", ""], ["csv3@example.com", "Dup", "", "", ""]])
    resp = _upload(api, body, update_existing="true")
    assert resp.status_code == 202, resp.get_data(as_text=True)
    job = resp.get_json()
    assert job["status"] == "queued" and job["type"] == "import" and job["id"].startswith("job_")
    assert_error(api.get(f"/jobs/{job['id']}/result"), 409, "job_not_ready")
    _run(app, account, import_contacts_csv, job["id"], batch_size=10)
    done = api.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "completed", done
    assert done["counts"] == {"imported": 25, "updated": 1, "skipped": 0, "failed": 2}
    assert done["processed"] == done["total"] == 28 and done["completed_at"]
    c = api.get("/contacts?email=csv7@example.com").get_json()["data"][0]
    assert c["tags"] == ["a", "b"] and c["consent"]["email"] == "subscribed" and c["attributes"] == {"plan": "pro"}
    assert api.get("/contacts?email=csv3@example.com").get_json()["data"][0]["first_name"] == "Dup"
    report = api.get(done["result_url"].removeprefix("/api/v1"))
    assert report.status_code == 200 and report.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert lines[0] == ["row", "email", "code", "param", "message"]
    assert [(r[0], r[2], r[3]) for r in lines[1:]] == [("27", "invalid_email", "email"), ("28", "invalid_request", "email")]
    # Running the job again does nothing (claimed once).
    assert _run(app, account, import_contacts_csv, job["id"]) is None


def test_csv_upload_errors(app, api):
    assert_error(api.client.post("/api/v1/imports", data={"update_existing": "true"},
                                 content_type="multipart/form-data", headers={"Authorization": f"Bearer {api.key}"}),
                 400, "invalid_request", "file")
    assert_error(_upload(api, b"email\na@b.co\n", update_existing="maybe"), 400, "invalid_request", "update_existing")
    assert_error(_upload(api, b"email\na@b.co\n", list_id="list_nope"), 404, "not_found", "list_id")
    assert_error(api.post("/imports", json={}), 400, "invalid_request", "url")
    assert_error(api.post("/imports", json={"url": "ftp://example.com/x.csv"}), 400, "invalid_url", "url")
    app.config["IMPORT_MAX_BYTES"] = 1000
    try:
        assert_error(_upload(api, b"email\n" + b"a@b.co\n" * 400_000), 413, "payload_too_large")
    finally:
        app.config.pop("IMPORT_MAX_BYTES")


def test_csv_header_without_address_fails_the_job(app, api, account):
    from app.imports.tasks import import_contacts_csv
    job = _upload(api, b"name,company\nAda,Acme\n").get_json()
    _run(app, account, import_contacts_csv, job["id"])
    done = api.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "failed" and "email" in done["error"]


@pytest.fixture
def csv_server():
    """A local HTTP server serving CSV bodies by path."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", files
    server.shutdown()
    server.server_close()


def test_url_import_job(app, test_api, account, csv_server):
    from app.imports.tasks import import_contacts_csv
    base, files = csv_server
    files["/list.csv"] = _csv([["email", "last_name"], ["url1@example.com", "One"], ["url2@example.com", "Two"]])
    job = test_api.post("/imports", json={"url": base + "/list.csv"}).get_json()
    _run(app, account, import_contacts_csv, job["id"], mode="test")
    done = test_api.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "completed" and done["counts"]["imported"] == 2
    missing = test_api.post("/imports", json={"url": base + "/missing.csv"}).get_json()
    _run(app, account, import_contacts_csv, missing["id"], mode="test")
    failed = test_api.get(f"/jobs/{missing['id']}").get_json()
    assert failed["status"] == "failed" and "404" in failed["error"]


def test_url_import_refuses_private_addresses(app, api, test_api):
    app.config["ALLOW_PRIVATE_URLS"] = False
    try:
        assert_error(test_api.post("/imports", json={"url": "http://127.0.0.1:9/x.csv"}), 400, "invalid_url", "url")
        assert_error(test_api.post("/imports", json={"url": "http://10.0.0.1/x.csv"}), 400, "invalid_url", "url")
    finally:
        app.config["ALLOW_PRIVATE_URLS"] = True
    assert_error(api.post("/imports", json={"url": "http://example.com/x.csv"}), 400, "invalid_url", "url")


def test_export_is_formula_safe_and_round_trips(app, api, account, other_api, other_account):
    from app.imports.tasks import export_contacts, import_contacts_csv
    api.post("/contacts/import", json={"contacts": [
        {"email": "exp1@example.com", "first_name": "=HYPERLINK(\"http://evil\")", "last_name": "@SUM(A1)",
         "phone_number": "+14155550123", "tags": ["vip", "news"], "attributes": {"plan": "-pro", "n": 3},
         "consent": {"email": "subscribed"}, "timezone": "Europe/Paris", "external_id": "ext-1"},
        {"email": "exp2@example.com", "attributes": {"other": "x"}},
    ]})
    job = api.get("/contacts/export").get_json()
    assert job["type"] == "export" and job["status"] == "queued"
    _run(app, account, export_contacts, job["id"], batch_size=1)
    done = api.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "completed" and done["counts"] == {"exported": 2} and done["total"] == 2
    text = api.get(f"/jobs/{job['id']}/result").get_data(as_text=True)
    rows = sorted(csv.DictReader(io.StringIO(text)), key=lambda r: r["email"])  # same created_at: id order
    assert [r["email"] for r in rows] == ["exp1@example.com", "exp2@example.com"]
    first = rows[0]
    assert first["first_name"] == "'=HYPERLINK(\"http://evil\")" and first["last_name"] == "'@SUM(A1)"
    assert first["phone_number"] == "'+14155550123" and first["attributes.plan"] == "'-pro"
    assert first["tags"] == "vip;news" and first["attributes.n"] == "3" and rows[1]["attributes.other"] == "x"
    # Round trip: the file imports into another organization as the same contacts.
    imp = _upload(other_api, text.encode()).get_json()
    _run(app, other_account, import_contacts_csv, imp["id"])
    assert other_api.get(f"/jobs/{imp['id']}").get_json()["counts"]["imported"] == 2
    back = other_api.get("/contacts?email=exp1@example.com").get_json()["data"][0]
    assert back["first_name"] == "=HYPERLINK(\"http://evil\")" and back["phone_number"] == "+14155550123"
    assert back["tags"] == ["vip", "news"] and back["consent"]["email"] == "subscribed"
    assert back["attributes"] == {"plan": "-pro", "n": "3"} and back["timezone"] == "Europe/Paris"


def test_export_of_a_list(app, api, account):
    from app.imports.tasks import export_contacts
    list_id = _make_list(app, account)
    api.post("/contacts/import", json={"list_id": list_id, "contacts": [{"email": "inlist@example.com"}]})
    api.post("/contacts/import", json={"contacts": [{"email": "outside@example.com"}]})
    job = api.get(f"/contacts/export?list_id={list_id}").get_json()
    _run(app, account, export_contacts, job["id"])
    rows = list(csv.DictReader(io.StringIO(api.get(f"/jobs/{job['id']}/result").get_data(as_text=True))))
    assert [r["email"] for r in rows] == ["inlist@example.com"]
    assert_error(api.get("/contacts/export?list_id=list_nope"), 404, "not_found", "list_id")
    assert_error(api.get("/contacts/export?bogus=1"), 400, "invalid_request", "bogus")


def test_a_deleted_contact_is_not_imported_again(api):
    """DELETE /contacts/{id} is a GDPR erasure: the address is suppressed (`erased`) and imports skip it."""
    created = api.post("/contacts", json={"email": "forget-me@example.com"}).get_json()
    assert api.delete(f"/contacts/{created['id']}").status_code == 200
    body = api.post("/contacts/import", json={"contacts": [{"email": "Forget-Me@example.com"}]}).get_json()
    assert (body["imported"], body["skipped"], body["errors"][0]["code"]) == (0, 1, "contact_erased")
