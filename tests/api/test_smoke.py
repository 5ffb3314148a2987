from tests.helpers import assert_error


def test_list_contacts_empty(api):
    resp = api.get("/contacts")
    assert resp.status_code == 200
    assert resp.get_json() == {"object": "list", "url": "/api/v1/contacts", "has_more": False, "data": []}


def test_unknown_field_names_param(api):
    assert_error(api.post("/contacts", json={"emial": "a@example.com"}), 400, "invalid_request", "emial")
