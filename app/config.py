"""Configuration, read once from the environment (Heroku style)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Plans set the per-key token bucket (requests/second, burst).  Enterprise is custom per organization.
PLAN_RATE_LIMITS = {
    "starter": (10, 20),
    "growth": (50, 100),
    "scale": (200, 400),
    "enterprise": (1000, 2000),
}

# API versions by date; an organization is pinned to the newest one when it is created.
API_VERSIONS = ("2026-06-01",)


def _flag(env: dict, name: str, default: bool = False) -> bool:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def normalize_database_url(url: str) -> str:
    """Accept Heroku's ``postgres://`` and pin the psycopg2 driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def default_sqlite_url(instance_path: str) -> str:
    return "sqlite:///" + os.path.join(instance_path, "postline.sqlite3")


def engine_options_for(db_url: str) -> dict:
    """SQLAlchemy engine options for this kind of database (the factory re-derives them when an override
    changes the URL)."""
    if db_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}
    # executemany as multi-row VALUES pages (psycopg2): the delivery worker's bulk UPDATEs of recipients
    # and messages go in a few round trips instead of one per row.  No `pool_pre_ping`: it costs a
    # `SELECT 1` round trip on every checkout (a fifth of a send's time); app.dbpool pings only a
    # connection that sat idle in the pool, where a dead one is likely.
    return {"executemany_mode": "values_plus_batch", "pool_recycle": 1800}


class Config:
    """Everything the app reads from the environment.  Built once per app in the factory."""

    def __init__(self, env: dict[str, str] | None = None):
        env = dict(os.environ if env is None else env)
        self.ENV_NAME = env.get("POSTLINE_ENV", "development")
        production = self.ENV_NAME == "production"
        self.SECRET_KEY = env.get("SECRET_KEY") or ("" if production else "dev-insecure-secret-key")
        if production and not self.SECRET_KEY:
            raise RuntimeError("SECRET_KEY must be set when POSTLINE_ENV=production")
        self.DATABASE_URL = normalize_database_url(env["DATABASE_URL"]) if env.get("DATABASE_URL") else None
        self.REDIS_URL = env.get("REDIS_URL") or None
        self.BASE_URL = (env.get("BASE_URL") or "http://localhost:%s" % env.get("PORT", "5000")).rstrip("/")
        self.PORT = int(env.get("PORT", "5000"))
        self.REQUIRE_HTTPS = _flag(env, "REQUIRE_HTTPS", production)
        self.ALLOW_PRIVATE_URLS = _flag(env, "ALLOW_PRIVATE_URLS", False)
        self.SMTP_RELAY_URL = env.get("SMTP_RELAY_URL") or None
        self.SMTP_PORT_OVERRIDE = int(env["SMTP_PORT_OVERRIDE"]) if env.get("SMTP_PORT_OVERRIDE") else None
        self.DNS_RESOLVER = env.get("DNS_RESOLVER") or None
        self.STRIPE_SECRET_KEY = env.get("STRIPE_SECRET_KEY") or None
        self.STRIPE_WEBHOOK_SECRET = env.get("STRIPE_WEBHOOK_SECRET") or None
        self.STRIPE_API_BASE = env.get("STRIPE_API_BASE") or None
        self.TWILIO_API_BASE = env.get("TWILIO_API_BASE") or None
        self.TWILIO_ACCOUNT_SID = env.get("TWILIO_ACCOUNT_SID") or None
        self.TWILIO_AUTH_TOKEN = env.get("TWILIO_AUTH_TOKEN") or None
        # Redis key prefix, so several deployments (or CI runs) can share one Redis server.
        self.REDIS_PREFIX = env.get("REDIS_PREFIX", "postline:")
        self.RQ_QUEUE_PREFIX = env.get("RQ_QUEUE_PREFIX", "")
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO")
        # A pooled PostgreSQL connection idle this long is pinged before use (app.dbpool).
        self.DB_PING_IDLE_SECONDS = float(env.get("DB_PING_IDLE_SECONDS", "5"))
        # Keys that decrypt secrets stored at rest (DKIM private keys …): the first encrypts, every one
        # decrypts, so a key can be rotated.  Default: derived from SECRET_KEY.
        self.ENCRYPTION_KEYS = [k.strip() for k in env.get("ENCRYPTION_KEYS", "").split(",") if k.strip()]
        # Sending domains' DNS records: the SPF `include:` host, the MX the return-path subdomain points at
        # (where bounces arrive), and the tracking CNAME target.  Defaults derive from BASE_URL's host.
        from urllib.parse import urlsplit
        _base_host = (urlsplit(self.BASE_URL).hostname or "localhost").lower()
        self.SPF_INCLUDE = (env.get("SPF_INCLUDE") or f"spf.{_base_host}").strip().rstrip(".").lower()
        self.INBOUND_MX_HOST = (env.get("INBOUND_MX_HOST") or _base_host).strip().rstrip(".").lower()
        self.TRACKING_HOST = (env.get("TRACKING_HOST") or _base_host).strip().rstrip(".").lower()
        # Opens/clicks within this many seconds of delivery are flagged as machine (scanners, prefetch).
        self.TRACKING_MACHINE_WINDOW = float(env.get("TRACKING_MACHINE_WINDOW", "10"))
        # Tracked links on a sending domain's verified `pl-track.<domain>` CNAME (needs TLS certificates).
        self.TRACKING_BRANDED_LINKS = _flag(env, "TRACKING_BRANDED_LINKS", False)
        # Delivery: the envelope sender of live mail is bounces+<token>@RETURN_PATH_DOMAIN when set, else
        # on the sending domain's return-path host (the `return_path` record of its DNS).
        self.SMTP_HELO_NAME = env.get("SMTP_HELO_NAME") or None
        self.SMTP_TIMEOUT = float(env.get("SMTP_TIMEOUT", "30"))
        # Deferred (4xx) mail is retried on this schedule, in seconds, the last interval repeating until
        # DELIVERY_MAX_AGE (5 days, RFC 5321 section 4.5.4.1) has passed since the message was queued.
        self.DELIVERY_RETRY_SCHEDULE = [int(x) for x in env.get(
            "DELIVERY_RETRY_SCHEDULE", "60,300,900,1800,3600,7200,10800,14400").split(",")]
        self.DELIVERY_MAX_AGE = int(env.get("DELIVERY_MAX_AGE", str(5 * 24 * 3600)))
        # Webhooks: a failed delivery is retried after each of these delays, in seconds (≈ 27.6 h in all),
        # then given up; an endpoint with no success for WEBHOOK_DISABLE_AFTER seconds is disabled.
        self.WEBHOOK_RETRY_SCHEDULE = [int(x) for x in env.get(
            "WEBHOOK_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000").split(",")]
        self.WEBHOOK_TIMEOUT = float(env.get("WEBHOOK_TIMEOUT", "10"))
        # Contact imports: the largest CSV accepted (upload or URL), the URL fetch's overall deadline, and
        # where job files (import inputs, error reports, exports) live (default: <instance>/storage).
        self.IMPORT_MAX_BYTES = int(env.get("IMPORT_MAX_BYTES", str(100 * 1024 * 1024)))
        self.IMPORT_URL_TIMEOUT = float(env.get("IMPORT_URL_TIMEOUT", "300"))
        self.STORAGE_PATH = env.get("STORAGE_PATH") or None
        # Job files (import inputs and error reports, exports) are deleted this many days after the job ends.
        self.JOB_FILE_RETENTION_DAYS = float(env.get("JOB_FILE_RETENTION_DAYS", "7"))
        self.WEBHOOK_DISABLE_AFTER = int(env.get("WEBHOOK_DISABLE_AFTER", str(5 * 24 * 3600)))
        self.WEBHOOK_CONCURRENCY = int(env.get("WEBHOOK_CONCURRENCY", "32"))

    def as_flask_config(self, instance_path: str) -> dict:
        db_url = self.DATABASE_URL or default_sqlite_url(instance_path)
        engine_options = engine_options_for(db_url)
        cfg = {k: v for k, v in vars(self).items() if k.isupper()}
        cfg.update(
            SQLALCHEMY_DATABASE_URI=db_url,
            SQLALCHEMY_ENGINE_OPTIONS=engine_options,
            SQLALCHEMY_TRACK_MODIFICATIONS=False,
            # CSRF is enforced on every dashboard form; the API authenticates with keys instead.
            WTF_CSRF_CHECK_DEFAULT=False,
            WTF_CSRF_TIME_LIMIT=None,
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=self.REQUIRE_HTTPS,
            REMEMBER_COOKIE_SAMESITE="Lax",
            MAX_CONTENT_LENGTH=40 * 1024 * 1024,
            JSON_SORT_KEYS=False,
            # flask-smorest / OpenAPI
            API_TITLE="Postline API",
            API_VERSION="v1",
            OPENAPI_VERSION="3.0.3",
            OPENAPI_URL_PREFIX="/api/v1",
            OPENAPI_JSON_PATH="openapi.json",
            OPENAPI_REDOC_PATH="/docs",
            OPENAPI_REDOC_URL="/static/vendor/redoc.standalone.js",
            PLAN_RATE_LIMITS=dict(PLAN_RATE_LIMITS),
            API_VERSIONS=API_VERSIONS,
            IDEMPOTENCY_TTL_SECONDS=24 * 3600,
            MAX_API_KEYS=10,
        )
        return cfg
