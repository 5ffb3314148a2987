"""Suppressions (API.md 7): create (idempotent), list + filters, read, delete by id and by recipient,
bad input, isolation; and the service functions the send pipeline and the delivery worker call."""
from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from tests.helpers import ApiClient, assert_error, make_account


def _add(api, **body):
    return api.post("/suppressions", json=body)


# --- create ---------------------------------------------------------------------------------------------

def test_create_normalises_and_answers_the_object(api):
    resp = _add(api, channel="email", recipient="  Ada.Lovelace@Example.COM ")
    assert resp.status_code == 201
    s = resp.get_json()
    assert s["id"].startswith("sup_") and s["object"] == "suppression"
    assert s["channel"] == "email" and s["recipient"] == "ada.lovelace@example.com"
    assert s["reason"] == "manual" and s["message_id"] is None and s["detail"] is None
    assert s["created_at"].endswith("Z")
    assert list(s) == ["id", "object", "channel", "recipient", "reason", "message_id", "detail", "created_at"]
    assert api.get(f"/suppressions/{s['id']}").get_json() == s


def test_create_sms_and_reasons(api):
    resp = _add(api, channel="sms", recipient="+1 415 555 0123", reason="stop_keyword", detail="STOP")
    assert resp.status_code == 201
    s = resp.get_json()
    assert s["recipient"] == "+14155550123" and s["reason"] == "stop_keyword" and s["detail"] == "STOP"
    for reason in ("bounce", "complaint", "unsubscribe", "erased"):
        assert _add(api, channel="email", recipient=f"{reason}@example.com", reason=reason).status_code == 201


def test_create_is_idempotent(api):
    first = _add(api, channel="email", recipient="dup@example.com", reason="bounce")
    again = _add(api, channel="email", recipient="DUP@example.com", reason="manual")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()  # unchanged: the first reason is kept
    assert len(api.get("/suppressions?recipient=dup@example.com").get_json()["data"]) == 1
    # Same recipient on the other channel is another suppression.
    assert _add(api, channel="sms", recipient="+14155550199").status_code == 201


@pytest.mark.parametrize("body,code,param", [
    ({"channel": "email", "recipient": "not an email"}, "invalid_email", "recipient"),
    ({"channel": "email", "recipient": "a@b"}, "invalid_email", "recipient"),
    ({"channel": "email", "recipient": "+14155550123"}, "invalid_email", "recipient"),
    ({"channel": "sms", "recipient": "4155550123"}, "invalid_phone", "recipient"),
    ({"channel": "sms", "recipient": "+1234"}, "invalid_phone", "recipient"),
    ({"channel": "sms", "recipient": "ada@example.com"}, "invalid_phone", "recipient"),
    ({"channel": "push", "recipient": "ada@example.com"}, "invalid_request", "channel"),
    ({"channel": "email", "recipient": "a@example.com", "reason": "annoying"}, "invalid_request", "reason"),
    ({"channel": "email", "recipient": "a@example.com", "reasn": "manual"}, "invalid_request", "reasn"),
    ({"recipient": "a@example.com"}, "invalid_request", "channel"),
    ({"channel": "email"}, "invalid_request", "recipient"),
    ({"channel": "email", "recipient": ""}, "invalid_request", "recipient"),
    ({"channel": "email", "recipient": 42}, "invalid_request", "recipient"),
    ({"channel": "email", "recipient": "a" * 321}, "invalid_request", "recipient"),
    ({"channel": "email", "recipient": "a@example.com", "detail": "x" * 501}, "invalid_request", "detail"),
    ({"channel": "email", "recipient": "a@example.com", "message_id": "msg_x"}, "invalid_request", "message_id"),
])
def test_create_refuses_bad_input(api, body, code, param):
    assert_error(_add(api, **body), 400, code, param)


def test_create_needs_the_write_scope(app, client, account):
    from app.apikeys.service import create_key
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"]):
        _, secret = create_key(account["organization_id"], name="reader", test_mode=False, preset="read")
        db.session.commit()
    reader = ApiClient(client, secret)
    assert reader.get("/suppressions").status_code == 200
    assert_error(_add(reader, channel="email", recipient="a@example.com"), 403, "forbidden")
    assert_error(reader.delete("/suppressions?channel=email&recipient=a@example.com"), 403, "forbidden")


# --- list -----------------------------------------------------------------------------------------------

def test_list_and_filters(api):
    a = _add(api, channel="email", recipient="a@example.com", reason="bounce").get_json()["id"]
    b = _add(api, channel="email", recipient="b@example.com", reason="complaint").get_json()["id"]
    c = _add(api, channel="sms", recipient="+14155550100", reason="stop_keyword").get_json()["id"]
    d = _add(api, channel="email", recipient="d@example.com").get_json()["id"]

    def ids(query=""):
        resp = api.get("/suppressions" + query)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        assert body["object"] == "list" and body["url"] == "/api/v1/suppressions"
        return [s["id"] for s in body["data"]]

    assert ids() == [d, c, b, a]
    assert ids("?channel=email") == [d, b, a]
    assert ids("?channel=sms") == [c]
    assert ids("?reason=complaint") == [b]
    assert ids("?reason=manual&channel=email") == [d]
    assert ids("?recipient=B@Example.com") == [b]
    assert ids("?recipient=%2B14155550100") == [c]
    assert ids("?recipient=%2B1%20415%20555%200100&channel=sms") == [c]
    assert ids("?recipient=nobody@example.com") == []
    assert ids("?limit=2") == [d, c]
    assert ids(f"?limit=2&starting_after={c}") == [b, a]
    assert ids(f"?ending_before={b}") == [d, c]


@pytest.mark.parametrize("query,code,param", [
    ("channel=fax", "invalid_request", "channel"),
    ("reason=annoying", "invalid_request", "reason"),
    ("recipient=nonsense@", "invalid_email", "recipient"),
    ("channel=sms&recipient=12", "invalid_phone", "recipient"),
    ("limit=0", "invalid_request", "limit"),
    ("limit=101", "invalid_request", "limit"),
    ("starting_after=sup_nope", "invalid_request", "starting_after"),
    ("recipent=a@example.com", "invalid_request", "recipent"),
])
def test_list_refuses_bad_queries(api, query, code, param):
    assert_error(api.get(f"/suppressions?{query}"), 400, code, param)


def test_pagination_walks_every_row(fast_api):
    ids = [_add(fast_api, channel="email", recipient=f"p{i}@example.com").get_json()["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        page = fast_api.get("/suppressions?limit=3" + (f"&starting_after={cursor}" if cursor else "")).get_json()
        seen += [s["id"] for s in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == list(reversed(ids))


# --- read and delete ------------------------------------------------------------------------------------

def test_get_unknown_is_404(api):
    assert_error(api.get("/suppressions/sup_missing"), 404, "not_found")


def test_delete_by_id(api):
    s = _add(api, channel="email", recipient="del@example.com").get_json()
    resp = api.delete(f"/suppressions/{s['id']}")
    assert resp.status_code == 200
    assert resp.get_json() == {"id": s["id"], "object": "suppression", "channel": "email",
                               "recipient": "del@example.com", "deleted": True}
    assert_error(api.get(f"/suppressions/{s['id']}"), 404, "not_found")
    assert_error(api.delete(f"/suppressions/{s['id']}"), 404, "not_found")
    # The recipient can be suppressed again afterwards.
    assert _add(api, channel="email", recipient="del@example.com").status_code == 201


def test_delete_by_recipient(api):
    s = _add(api, channel="sms", recipient="+14155550111").get_json()
    _add(api, channel="email", recipient="keep@example.com")
    resp = api.delete("/suppressions?channel=sms&recipient=%2B1%20415-555-0111")
    assert resp.status_code == 200 and resp.get_json()["id"] == s["id"] and resp.get_json()["deleted"] is True
    assert_error(api.get(f"/suppressions/{s['id']}"), 404, "not_found")
    assert_error(api.delete("/suppressions?channel=sms&recipient=%2B14155550111"), 404, "not_found", "recipient")
    assert [x["recipient"] for x in api.get("/suppressions").get_json()["data"]] == ["keep@example.com"]
    resp = api.delete("/suppressions?channel=email&recipient=KEEP@example.com")
    assert resp.status_code == 200 and resp.get_json()["recipient"] == "keep@example.com"


@pytest.mark.parametrize("query,code,param", [
    ("", "invalid_request", "channel"),
    ("channel=email", "invalid_request", "recipient"),
    ("recipient=a@example.com", "invalid_request", "channel"),
    ("channel=fax&recipient=a@example.com", "invalid_request", "channel"),
    ("channel=email&recipient=nope", "invalid_email", "recipient"),
    ("channel=sms&recipient=nope", "invalid_phone", "recipient"),
    ("channel=email&recipient=a@example.com&id=sup_x", "invalid_request", "id"),
])
def test_delete_by_recipient_refuses_bad_queries(api, query, code, param):
    assert_error(api.delete(f"/suppressions?{query}"), 400, code, param)


# --- isolation ------------------------------------------------------------------------------------------

def test_other_organizations_suppressions_are_invisible(api, other_api):
    theirs = _add(other_api, channel="email", recipient="shared@example.com", reason="complaint").get_json()
    assert_error(api.get(f"/suppressions/{theirs['id']}"), 404, "not_found")
    assert_error(api.delete(f"/suppressions/{theirs['id']}"), 404, "not_found")
    assert_error(api.delete("/suppressions?channel=email&recipient=shared@example.com"), 404, "not_found")
    assert api.get("/suppressions?recipient=shared@example.com").get_json()["data"] == []
    assert_error(api.get(f"/suppressions?starting_after={theirs['id']}"), 400, "invalid_request", "starting_after")
    ours = _add(api, channel="email", recipient="shared@example.com")
    assert ours.status_code == 201 and ours.get_json()["id"] != theirs["id"]
    assert other_api.get(f"/suppressions/{theirs['id']}").get_json()["reason"] == "complaint"


def test_test_mode_is_separate(api, test_api):
    live = _add(api, channel="email", recipient="mode@example.com").get_json()["id"]
    assert_error(test_api.get(f"/suppressions/{live}"), 404, "not_found")
    assert test_api.get("/suppressions").get_json()["data"] == []
    test = _add(test_api, channel="email", recipient="mode@example.com")
    assert test.status_code == 201 and test.get_json()["id"] != live
    assert_error(api.get(f"/suppressions/{test.get_json()['id']}"), 404, "not_found")
    assert_error(test_api.delete(f"/suppressions/{live}"), 404, "not_found")


# --- service: what the send pipeline and the delivery worker call ---------------------------------------

@pytest.fixture
def scoped(app, account):
    """An app context with the account's live tenant in scope; rolled back at the end."""
    from app.extensions import db
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        yield db
        db.session.rollback()


class _Counter:
    def __init__(self, engine):
        self.engine, self.statements = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on)

    def _on(self, conn, cursor, statement, parameters, context, executemany):
        if "suppressions" in statement:
            self.statements.append(statement)


def test_normalize_recipient():
    from app.errors import ValidationError
    from app.suppressions.service import normalize_recipient
    assert normalize_recipient("email", " Ada@Example.COM ") == "ada@example.com"
    assert normalize_recipient("email", "bounce@simulator.test") == "bounce@simulator.test"
    assert normalize_recipient("sms", "+1 (415) 555-0123") == "+14155550123"
    for channel, value, code in [("email", "nope", "invalid_email"), ("sms", "555", "invalid_phone"),
                                 ("email", "", "invalid_email")]:
        with pytest.raises(ValidationError) as exc:
            normalize_recipient(channel, value)
        assert (exc.value.code, exc.value.param) == (code, "recipient")
    with pytest.raises(ValidationError) as exc:
        normalize_recipient("fax", "x")
    assert exc.value.param == "channel"


def test_add_and_query_many_in_few_statements(scoped):
    from app.suppressions.service import add_suppressions, suppressed
    db = scoped
    rows = [{"channel": "email", "recipient": f"User{i}@Example.com", "reason": "bounce", "message_id": f"msg_{i}"}
            for i in range(2500)]
    rows += [{"channel": "email", "recipient": "user7@example.com", "reason": "complaint"},  # duplicate in-call
             {"channel": "email", "recipient": "USER8@EXAMPLE.COM", "reason": "manual"}]
    with _Counter(db.engine) as counter:
        assert add_suppressions(rows) == 2500
    assert len(counter.statements) == 3  # 2,500 rows in chunks of 1,000
    assert add_suppressions(rows[:10]) == 0  # all there already

    asked = [f"user{i}@example.com" for i in range(0, 2997, 3)] + ["USER1@example.com", "user1@example.com"]
    with _Counter(db.engine) as counter:
        found = suppressed("email", asked)
    assert len(counter.statements) == 1  # ≤ 1,000 distinct recipients: one SELECT
    # The in-call duplicates did not override the first row's reason.
    assert found == {f"user{i}@example.com": "bounce" for i in set(range(0, 2500, 3)) | {1}}
    assert suppressed("sms", ["+14155550123"]) == {}
    assert suppressed("email", []) == {}

    many = [f"user{i}@example.com" for i in range(2500)]
    with _Counter(db.engine) as counter:
        assert len(suppressed("email", many)) == 2500
    assert len(counter.statements) == 3


def test_first_reason_wins_and_rows_keep_their_fields(scoped):
    from app.suppressions.models import Suppression
    from app.suppressions.service import add_suppressions, suppress, suppressed
    db = scoped
    suppress("email", "Hard@Example.com", "bounce", message_id="msg_abc", detail="550 5.1.1 no such user")
    suppress("email", "hard@example.com", "complaint")
    assert suppressed("email", ["HARD@example.com"]) == {"hard@example.com": "bounce"}
    row = db.session.execute(select(Suppression).where(Suppression.recipient == "hard@example.com")).scalar_one()
    assert (row.reason, row.message_id, row.detail) == ("bounce", "msg_abc", "550 5.1.1 no such user")
    assert row.id.startswith("sup_") and row.mode == "live"
    assert add_suppressions([{"channel": "sms", "recipient": "+1 415 555 0177", "reason": "stop_keyword"}]) == 1
    assert suppressed("sms", ["+14155550177"]) == {"+14155550177": "stop_keyword"}
    with pytest.raises(ValueError):
        add_suppressions([{"channel": "email", "recipient": "x@example.com", "reason": "annoyed"}])
    assert add_suppressions([]) == 0


def test_add_suppressions_for_other_tenants_and_modes(scoped, account, other_account):
    """The delivery worker passes organization_id/mode per row; each tenant only ever sees its own."""
    from app.suppressions.models import Suppression
    from app.suppressions.service import add_suppressions, suppressed
    from app.tenancy import tenant_scope
    db = scoped
    rows = [{"channel": "email", "recipient": "w@example.com", "reason": "bounce",
             "organization_id": other_account["organization_id"], "mode": "live"},
            {"channel": "email", "recipient": "w@example.com", "reason": "complaint",
             "organization_id": account["organization_id"], "mode": "test"}]
    assert add_suppressions(rows) == 2
    assert suppressed("email", ["w@example.com"]) == {}  # ours, live: nothing
    with tenant_scope(account["organization_id"], "test"):
        assert suppressed("email", ["w@example.com"]) == {"w@example.com": "complaint"}
    with tenant_scope(other_account["organization_id"], "live"):
        assert suppressed("email", ["w@example.com"]) == {"w@example.com": "bounce"}
        assert db.session.execute(select(func.count(Suppression.id))).scalar_one() == 1


def test_suppressions_are_committed_by_the_api(app, api, account):
    """Rows written through the API are there for the next request and for a worker's session."""
    _add(api, channel="email", recipient="committed@example.com")
    from app.suppressions.service import suppressed
    from app.tenancy import tenant_scope
    with app.app_context(), tenant_scope(account["organization_id"], "live"):
        assert suppressed("email", ["committed@example.com"]) == {"committed@example.com": "manual"}


def test_concurrent_creates_make_one_row(app, client):
    """Idempotent under races too: ON CONFLICT DO NOTHING, then read back."""
    from concurrent.futures import ThreadPoolExecutor
    with app.app_context():
        acct = make_account(plan="enterprise")
    key = acct["live_api_key"]

    def post(_):
        c = app.test_client()
        return c.post("/api/v1/suppressions", json={"channel": "email", "recipient": "race@example.com"},
                      headers={"Authorization": f"Bearer {key}"})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) == 1 and statuses.count(200) == 7, statuses
    assert len({r.get_json()["id"] for r in results}) == 1
