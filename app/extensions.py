"""Extensions, created unbound and initialised in the factory.  Nothing connects at import time."""
from __future__ import annotations

import redis as redis_lib
from flask import current_app
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from .api.openapi import PostlineApi

# Deterministic constraint names, so migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
api = PostlineApi()  # flask-smorest's Api with the contract's errors in the OpenAPI document


class RedisHolder:
    """One connection pool per app, created on first use from ``REDIS_URL``."""

    def init_app(self, app):
        app.extensions["postline_redis"] = None

    @property
    def client(self) -> redis_lib.Redis:
        app = current_app._get_current_object()
        client = app.extensions.get("postline_redis")
        if client is None:
            url = app.config.get("REDIS_URL")
            if not url:
                raise RuntimeError(
                    "REDIS_URL is not set. Start the app with `python -m app.launcher` (embedded Redis) "
                    "or point REDIS_URL at a Redis server."
                )
            client = redis_lib.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
            app.extensions["postline_redis"] = client
        return client

    def key(self, *parts: str) -> str:
        return current_app.config["REDIS_PREFIX"] + ":".join(parts)


redis = RedisHolder()
