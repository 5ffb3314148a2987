"""`flask accounts create … --json` prints the JSON of API.md section 2, with working keys."""
import json
import uuid

from tests.helpers import ApiClient


def test_accounts_create_json(app, client):
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    result = app.test_cli_runner().invoke(args=["accounts", "create", "--org", "Acme", "--email", email,
                                                "--password", "correct horse battery", "--plan", "growth",
                                                "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert set(out) == {"organization_id", "user_id", "live_api_key", "test_api_key"}
    assert out["organization_id"].startswith("org_")
    assert out["live_api_key"].startswith("sk_live_") and out["test_api_key"].startswith("sk_test_")
    live = ApiClient(client, out["live_api_key"]).get("/contacts")
    assert live.status_code == 200 and live.headers["X-RateLimit-Limit"] == "100"  # growth: burst 100
    assert ApiClient(client, out["test_api_key"]).get("/contacts").status_code == 200


def test_accounts_create_refuses_bad_input(app):
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["accounts", "create", "--org", "A", "--email", "not-an-email", "--password",
                              "correct horse battery", "--json"])
    assert bad.exit_code != 0 and "invalid_email" in bad.output
    short = runner.invoke(args=["accounts", "create", "--org", "A", "--email", "ok@example.com", "--password", "x"])
    assert short.exit_code != 0 and "at least" in short.output


def test_duplicate_email_refused(app):
    runner = app.test_cli_runner()
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    args = ["accounts", "create", "--org", "A", "--email", email, "--password", "correct horse battery"]
    assert runner.invoke(args=args).exit_code == 0
    again = runner.invoke(args=args)
    assert again.exit_code != 0 and "already exists" in again.output
