"""Operator commands: `flask --app wsgi accounts create …`."""
from __future__ import annotations

import json

import click
from flask import Flask
from flask.cli import AppGroup

from .errors import DomainError
from .extensions import db

accounts_cli = AppGroup("accounts", help="Create organizations and their owners.")


@accounts_cli.command("create")
@click.option("--org", "org_name", required=True, help="Organization name.")
@click.option("--email", required=True, help="The owner's email (log-in).")
@click.option("--password", required=True, help="The owner's password (≥ 10 characters).")
@click.option("--plan", default="starter", show_default=True,
              type=click.Choice(["starter", "growth", "scale", "enterprise"]))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def create_account_cmd(org_name, email, password, plan, as_json):
    """Create an organization, its owner, and a live and a test admin API key."""
    from .accounts.service import create_account

    try:
        result = create_account(org_name, email, password, plan)
        db.session.commit()
    except DomainError as err:
        db.session.rollback()
        if as_json:
            click.echo(json.dumps({"error": {"code": err.code, "message": err.message, "param": err.param}}))
        raise click.ClickException(err.message) from None
    out = {k: result[k] for k in ("organization_id", "user_id", "live_api_key", "test_api_key")}
    if as_json:
        click.echo(json.dumps(out))
    else:
        for k, v in out.items():
            click.echo(f"{k}: {v}")


def register_cli(app: Flask) -> None:
    app.cli.add_command(accounts_cli)
