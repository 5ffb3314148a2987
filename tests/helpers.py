"""Factories and a small API client used across the suite."""
from __future__ import annotations

import uuid

PASSWORD = "correct horse battery staple"


def make_account(plan: str = "starter", email: str | None = None) -> dict:
    """Create an organization + owner + keys (committed).  Needs an app context."""
    from app.accounts.service import create_account
    from app.extensions import db

    email = email or f"owner-{uuid.uuid4().hex[:10]}@example.com"
    result = create_account(f"Org {uuid.uuid4().hex[:6]}", email, PASSWORD, plan)
    db.session.commit()
    return {"organization_id": result["organization_id"], "user_id": result["user_id"],
            "live_api_key": result["live_api_key"], "test_api_key": result["test_api_key"],
            "email": email, "password": PASSWORD}


class ApiClient:
    """Flask test client with the key in `Authorization: Bearer`, JSON in and out."""

    def __init__(self, client, key: str, prefix: str = "/api/v1"):
        self.client, self.key, self.prefix = client, key, prefix

    def _headers(self, headers):
        out = {"Authorization": f"Bearer {self.key}"}
        out.update(headers or {})
        return out

    def request(self, method: str, path: str, json=None, headers=None, **kwargs):
        return self.client.open(self.prefix + path, method=method, json=json, headers=self._headers(headers),
                                **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def assert_error(resp, status: int, code: str, param: str | None = "__any__") -> dict:
    """The contract's error shape, with the expected status, code and (optionally) param."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.is_json, resp.get_data(as_text=True)[:200]
    err = resp.get_json()["error"]
    assert set(err) >= {"type", "code", "message", "param", "status", "doc_url", "request_id"}
    assert err["code"] == code, err
    assert err["status"] == status
    assert err["request_id"] == resp.headers["X-Request-Id"]
    if param != "__any__":
        assert err["param"] == param, err
    return err
