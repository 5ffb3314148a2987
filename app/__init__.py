"""Postline: the application factory."""
from __future__ import annotations

import logging
import os

from flask import Flask

from .config import ROOT, Config


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.environ.get("POSTLINE_INSTANCE_PATH") or str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.json.sort_keys = False  # keep schema order: "id" and "object" first, as clients read them
    app.config.update(Config().as_flask_config(app.instance_path))
    if overrides:
        app.config.update(overrides)
        if "SQLALCHEMY_DATABASE_URI" in overrides and "SQLALCHEMY_ENGINE_OPTIONS" not in overrides:
            from .config import engine_options_for
            app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options_for(overrides["SQLALCHEMY_DATABASE_URI"])
    logging.basicConfig(level=app.config["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from . import errors, jobs, models  # noqa: F401  (models: every table registered on the metadata)
    from .api import machinery, register_api
    from .extensions import csrf, db, htmx, login_manager, migrate, redis
    from .web import register_web

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    redis.init_app(app)
    jobs.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _tune_sqlite(app)
    else:
        from .dbpool import ping_when_idle
        with app.app_context():
            ping_when_idle(db.engine, app.config["DB_PING_IDLE_SECONDS"])

    register_api(app)
    register_web(app)
    from .system.views import bp as system_bp
    app.register_blueprint(system_bp)  # /healthz
    machinery.init_app(app)
    errors.register_error_handlers(app)  # after the API: overrides flask-smorest's app-wide handler

    from .cli import register_cli
    register_cli(app)
    return app


def _tune_sqlite(app: Flask) -> None:
    """WAL lets the worker read while the web process writes; busy_timeout makes writers queue."""
    from sqlalchemy import event

    from .extensions import db

    with app.app_context():
        engine = db.engine

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
