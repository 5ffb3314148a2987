"""Another organization's objects answer 404 on every endpoint, and a test key never sees live data."""
import pytest

from tests.helpers import assert_error


@pytest.fixture
def theirs(other_api):
    contact = other_api.post("/contacts", json={"email": "theirs@example.com"}).get_json()["id"]
    key = other_api.post("/api-keys", json={"name": "theirs", "scope": "read"}).get_json()["id"]
    domain = other_api.post("/domains", json={"domain": "theirs.example.com"}).get_json()["id"]
    return {"contact": contact, "key": key, "domain": domain}


ENDPOINTS = [
    ("GET", "/contacts/{contact}", None),
    ("PATCH", "/contacts/{contact}", {"first_name": "x"}),
    ("DELETE", "/contacts/{contact}", None),
    ("GET", "/api-keys/{key}", None),
    ("PATCH", "/api-keys/{key}", {"name": "x"}),
    ("DELETE", "/api-keys/{key}", None),
    ("POST", "/api-keys/{key}/rotate", None),
    ("GET", "/domains/{domain}", None),
    ("DELETE", "/domains/{domain}", None),
    ("POST", "/domains/{domain}/verify", None),
]


@pytest.mark.parametrize("method,path,body", ENDPOINTS)
def test_other_organizations_objects_are_404(api, theirs, method, path, body):
    assert_error(api.request(method, path.format(**theirs), json=body), 404, "not_found")


def test_lists_and_cursors_never_cross_tenants(api, theirs):
    assert theirs["contact"] not in [c["id"] for c in api.get("/contacts?limit=100").get_json()["data"]]
    assert_error(api.get(f"/contacts?starting_after={theirs['contact']}"), 400, "invalid_request", "starting_after")
    assert api.get("/contacts?email=theirs@example.com").get_json()["data"] == []
    assert theirs["domain"] not in [d["id"] for d in api.get("/domains?limit=100").get_json()["data"]]
    assert_error(api.get(f"/domains?starting_after={theirs['domain']}"), 400, "invalid_request", "starting_after")


def test_test_key_does_not_see_live_objects(api, test_api):
    live = api.post("/contacts", json={"email": "live-only@example.com"}).get_json()["id"]
    assert_error(test_api.get(f"/contacts/{live}"), 404, "not_found")
    created = test_api.post("/contacts", json={"email": "live-only@example.com"})
    assert created.status_code == 201 and created.get_json()["id"] != live
    assert_error(api.get(f"/contacts/{created.get_json()['id']}"), 404, "not_found")
