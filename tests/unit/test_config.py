"""Config: read once from the environment, Heroku style; production fails fast."""
from __future__ import annotations

import os

import pytest

from app.config import Config, default_sqlite_url, normalize_database_url


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:p@db.example.com:5432/postline", "postgresql+psycopg2://u:p@db.example.com:5432/postline"),
    ("postgresql://u@127.0.0.1/postline", "postgresql+psycopg2://u@127.0.0.1/postline"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
])
def test_database_url_pins_psycopg2(url, expected):
    assert normalize_database_url(url) == expected


def test_heroku_database_url_from_environment():
    cfg = Config({"DATABASE_URL": "postgres://u:p@h:5432/d"}).as_flask_config("/srv/instance")
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://u:p@h:5432/d"
    assert cfg["SQLALCHEMY_ENGINE_OPTIONS"] == {"executemany_mode": "values_plus_batch", "pool_recycle": 1800}
    assert "pool_pre_ping" not in cfg["SQLALCHEMY_ENGINE_OPTIONS"]  # app.dbpool pings idle connections only


def test_default_database_is_sqlite_under_the_instance_path(tmp_path):
    cfg = Config({}).as_flask_config(str(tmp_path))
    assert cfg["SQLALCHEMY_DATABASE_URI"] == default_sqlite_url(str(tmp_path))
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + os.path.join(str(tmp_path), "postline.sqlite3")
    assert cfg["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["check_same_thread"] is False


def test_empty_database_url_means_the_default(tmp_path):
    cfg = Config({"DATABASE_URL": ""}).as_flask_config(str(tmp_path))
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


def test_port_defaults_to_5000_and_feeds_base_url():
    cfg = Config({})
    assert cfg.PORT == 5000
    assert cfg.BASE_URL == "http://localhost:5000"
    cfg = Config({"PORT": "8123"})
    assert cfg.PORT == 8123
    assert cfg.BASE_URL == "http://localhost:8123"


def test_base_url_wins_and_loses_its_trailing_slash():
    assert Config({"BASE_URL": "https://mail.example.com/", "PORT": "8000"}).BASE_URL == "https://mail.example.com"


def test_redis_url_unset_means_embedded():
    assert Config({}).REDIS_URL is None
    assert Config({"REDIS_URL": "redis://127.0.0.1:6379/3"}).REDIS_URL == "redis://127.0.0.1:6379/3"


def test_production_without_secret_key_fails_fast():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Config({"POSTLINE_ENV": "production"})
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Config({"POSTLINE_ENV": "production", "SECRET_KEY": ""})


def test_production_with_secret_key_requires_https_by_default():
    cfg = Config({"POSTLINE_ENV": "production", "SECRET_KEY": "s3cret"})
    assert cfg.SECRET_KEY == "s3cret"
    assert cfg.REQUIRE_HTTPS is True
    assert cfg.as_flask_config("/srv")["SESSION_COOKIE_SECURE"] is True


def test_development_has_a_dev_secret_and_plain_http():
    cfg = Config({})
    assert cfg.SECRET_KEY
    assert cfg.REQUIRE_HTTPS is False


def test_create_app_in_production_without_secret_fails_fast(monkeypatch):
    from app import create_app

    monkeypatch.setenv("POSTLINE_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app()
