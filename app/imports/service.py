"""The bulk upsert engine and the import/export work built on it.  Framework-free; tenant from the scope.

``upsert_batch`` applies the rules of ``app.contacts.service.upsert_contact`` to thousands of rows at once:
the email is lower-cased and is the key (unique per organization and mode); a row with no email matches the
newest email-less contact with its phone number; attributes merge (a null value removes the key); tags,
consent, metadata and the other fields replace what they name and keep what they do not.  It is set-based:
one ``INSERT … ON CONFLICT (organization_id, mode, email) DO UPDATE … RETURNING`` per batch (per shape of
row, usually one), the same statement on PostgreSQL and SQLite (≥ 3.35), sent as multi-row VALUES pages by
SQLAlchemy's insertmanyvalues.  Whether a row was created or updated is read from RETURNING: an updated row
returns its existing id, not the one proposed (the portable form of PostgreSQL's ``xmax = 0``).

Addresses suppressed with reason ``erased`` (a GDPR erasure) are never re-imported: counted as skipped and
reported.  Events ``contact.created`` / ``contact.updated`` are recorded with one INSERT per batch.
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import bindparam, literal_column, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import NotFound, UnprocessableError, ValidationError
from ..events.service import _LISTENERS, record_events
from ..extensions import db
from ..sqlhelpers import dialect_name
from ..tenancy import require_tenant
from ..timeutil import rfc3339, utcnow

BATCH_SIZE = 5000
MAX_SYNC_CONTACTS = 10_000

_NULLABLE = ("phone_number", "first_name", "last_name", "timezone", "locale", "external_id")


def _contacts():
    from ..contacts.models import Contact
    return Contact.__table__


@dataclass
class BatchResult:
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)  # {index, code, message, param}
    contact_ids: list = field(default_factory=list)

    def add(self, other: "BatchResult") -> None:
        self.imported += other.imported
        self.updated += other.updated
        self.skipped += other.skipped
        self.errors.extend(other.errors)


def check_list(list_id: str | None):
    """The static list imported contacts go into: 404 if unknown, 400 if dynamic (param ``list_id``)."""
    if list_id is None:
        return None
    from ..lists.models import ContactList
    lst = db.session.execute(select(ContactList).where(ContactList.id == list_id)).scalar_one_or_none() \
        if isinstance(list_id, str) and len(list_id) <= 64 else None
    if lst is None:
        raise NotFound("No such list.", param="list_id")
    if lst.list_type != "static":
        raise UnprocessableError("Contacts can only be imported into a static list; a dynamic list's members "
                                 "follow its segment_rules.", code="dynamic_list", param="list_id")
    return lst


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# byte → base62 character for bytes < 248 (= 4 × 62, so every character is equally likely); the rest dropped.
_B62_TABLE = bytes((_B62[b % 62].encode()[0] if b < 248 else 0) for b in range(256))
_B62_DROP = bytes(range(248, 256))


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids like ``app.ids.new_id(prefix)`` (20 uniformly random base62 characters, ≈ 119 bits), minted
    in bulk: one ``token_bytes`` call mapped through a table, instead of 20 ``divmod`` per id."""
    need = 20 * n
    chars = b""
    while len(chars) < need:
        chars += secrets.token_bytes(need - len(chars) + need // 16 + 16).translate(_B62_TABLE, _B62_DROP)
    text = chars[:need].decode("ascii")
    return [f"{prefix}_{text[i:i + 20]}" for i in range(0, need, 20)]


# --- merging rows that name the same contact within one batch -------------------------------------------

def _merge(into: dict, data: dict) -> None:
    """Apply ``data`` over ``into`` as two successive upserts would."""
    for key, value in data.items():
        if key == "attributes":
            merged = dict(into.get("attributes") or {})
            merged.update(value)
            into["attributes"] = merged
        elif key == "consent":
            consent = dict(into.get("consent") or {})
            consent.update(value)
            into["consent"] = consent
        else:
            into[key] = value


def _erased(emails: list[str], phones: list[str], tenant) -> set[str]:
    from ..suppressions.models import Suppression
    s = Suppression.__table__
    found: set[str] = set()
    for channel, values in (("email", emails), ("sms", phones)):
        for chunk in _chunks(values, 5000):
            found.update(db.session.execute(
                select(s.c.recipient).where(s.c.organization_id == tenant.organization_id, s.c.mode == tenant.mode,
                                            s.c.channel == channel, s.c.reason == "erased",
                                            s.c.recipient.in_(chunk))).scalars())
    return found


def _chunks(values: list, size: int):
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _phone_matches(phones: list[str], tenant) -> dict[str, str]:
    """phone → id of the newest email-less contact with it."""
    c = _contacts()
    out: dict[str, str] = {}
    for chunk in _chunks(phones, 5000):
        for row in db.session.execute(
                select(c.c.id, c.c.phone_number).where(
                    c.c.organization_id == tenant.organization_id, c.c.mode == tenant.mode, c.c.email.is_(None),
                    c.c.phone_number.in_(chunk)).order_by(c.c.created_at, c.c.id)):
            out[row.phone_number] = row.id
    return out


# --- the statement ------------------------------------------------------------------------------------------

def _insert(table):
    return (postgresql.insert(table) if dialect_name() == "postgresql" else sqlite.insert(table))


def _attributes_merge(table, excluded):
    """Existing attributes patched with the row's: a null value removes the key (RFC 7396 merge patch;
    values are never objects, so the patch is flat)."""
    if dialect_name() == "postgresql":
        return literal_column(
            "(contacts.attributes - ARRAY(SELECT key FROM jsonb_each(excluded.attributes) "
            "WHERE jsonb_typeof(value) = 'null')) || jsonb_strip_nulls(excluded.attributes)")
    from sqlalchemy import func
    return func.json_patch(table.c.attributes, excluded.attributes)


def _shape(data: dict) -> tuple:
    """Rows of one shape share an UPDATE clause: which nullable fields they clear, which NOT NULL fields
    they set."""
    nulls = frozenset(k for k in _NULLABLE if k in data and data[k] is None)
    consent = data.get("consent") or {}
    return (nulls, "tags" in data, "email" in consent, "sms" in consent, "metadata" in data)


def _statement(shape: tuple, by_id: bool, update_existing: bool, from_group: int | None = None):
    """The upsert for rows of one shape: VALUES (executemany), or ``INSERT … SELECT`` from the batch COPY'd
    into the session's temp table (PostgreSQL, ``from_group``)."""
    table = _contacts()
    ins = _insert(table)
    if from_group is not None:
        src = _staging()
        names = [c.name for c in src.c if c.name != "grp"]
        ins = ins.from_select(names, select(*[src.c[n] for n in names]).where(src.c.grp == from_group))
    returning = [table.c.id, table.c.email, table.c.phone_number, table.c.first_name, table.c.last_name,
                 table.c.attributes, table.c.tags, table.c.consent_email, table.c.consent_sms, table.c.timezone,
                 table.c.locale, table.c.external_id, table.c["metadata"], table.c.created_at, table.c.updated_at]
    target = ["id"] if by_id else ["organization_id", "mode", "email"]
    if not update_existing:
        return ins.on_conflict_do_nothing(index_elements=target).returning(*returning)
    nulls, tags, consent_email, consent_sms, metadata = shape
    ex = ins.excluded
    from sqlalchemy import func
    set_ = {name: (ex[name] if name in nulls else func.coalesce(ex[name], table.c[name])) for name in _NULLABLE}
    set_["attributes"] = _attributes_merge(table, ex)
    if tags:
        set_["tags"] = ex.tags
    if consent_email:
        set_["consent_email"] = ex.consent_email
    if consent_sms:
        set_["consent_sms"] = ex.consent_sms
    if metadata:
        set_["metadata"] = ex["metadata"]
    set_["updated_at"] = ex.updated_at
    return ins.on_conflict_do_update(index_elements=target, set_=set_).returning(*returning)


# --- PostgreSQL: COPY the batch into a temp table, then INSERT … SELECT … ON CONFLICT ------------------------
#
# Binding 5,000 rows × 17 parameters through SQLAlchemy and psycopg2 costs more than the upsert itself; COPY
# in text format streams them with no per-value processing.  The temp table lives as long as the session's
# connection (created once, emptied per batch).

COPY_THRESHOLD = 200
_STAGING_COLUMNS = (
    ("grp", "integer"), ("id", "varchar(32)"), ("organization_id", "varchar(32)"), ("mode", "varchar(4)"),
    ("email", "varchar(320)"), ("phone_number", "varchar(20)"), ("first_name", "varchar(100)"),
    ("last_name", "varchar(100)"), ("attributes", "jsonb"), ("tags", "jsonb"), ("consent_email", "varchar(12)"),
    ("consent_sms", "varchar(12)"), ("timezone", "varchar(64)"), ("locale", "varchar(35)"),
    ("external_id", "varchar(200)"), ("metadata", "jsonb"), ("created_at", "timestamp"),
    ("updated_at", "timestamp"),
)
_STAGING = "postline_import_rows"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _staging():
    from sqlalchemy import column, table
    return table(_STAGING, *[column(name) for name, _ in _STAGING_COLUMNS])


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]")
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _copy_text(value) -> str:
    """One value in COPY's text format (``\\N`` is NULL; backslash, tab, newline and CR escaped)."""
    if value is None:
        return "\\N"
    if value.__class__ is str:
        return value.translate(_ESCAPES) if _NEEDS_ESCAPE.search(value) else value
    if isinstance(value, (dict, list)):
        if not value:
            return "{}" if isinstance(value, dict) else "[]"
        text = _JSON(value)
        return text.translate(_ESCAPES) if _NEEDS_ESCAPE.search(text) else text
    return value.isoformat(" ") if hasattr(value, "isoformat") else str(value)


def _copy_rows(params: list[dict], groups: list[int]) -> None:
    import io
    conn = db.session.connection()
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ("
        + ", ".join(f"{name} {type_}" for name, type_ in _STAGING_COLUMNS) + ")")
    conn.exec_driver_sql(f"TRUNCATE {_STAGING}")
    names = [name for name, _ in _STAGING_COLUMNS[1:]]
    buf = io.StringIO()
    buf.writelines("\t".join([str(g)] + [_copy_text(p[n]) for n in names]) + "\n" for p, g in zip(params, groups))
    buf.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f"COPY {_STAGING} ({', '.join(['grp'] + names)}) FROM STDIN", buf)
    finally:
        cursor.close()


def _contact_data(row) -> dict:
    """The contact as the API shows it (ContactSchema), built without marshmallow: it runs per row."""
    return {"id": row.id, "object": "contact", "email": row.email, "phone_number": row.phone_number,
            "first_name": row.first_name, "last_name": row.last_name,
            # A null attribute of a new contact is dropped from the row after RETURNING (step 5): as stored.
            "attributes": {k: v for k, v in (row.attributes or {}).items() if v is not None},
            "tags": row.tags or [], "consent": {"email": row.consent_email, "sms": row.consent_sms},
            "timezone": row.timezone, "locale": row.locale, "external_id": row.external_id,
            "metadata": row._mapping["metadata"] or {}, "created_at": rfc3339(row.created_at),
            "updated_at": rfc3339(row.updated_at)}


def upsert_batch(rows: list[tuple[int, dict]], *, list_id: str | None = None, update_existing: bool = True,
                 events: bool = True) -> BatchResult:
    """Upsert validated rows ``(index, data)`` (data as ``ContactCreateSchema`` loads it).  Set-based; see
    the module docstring for the rules.  Never raises for one bad row: it is reported in ``errors``."""
    tenant = require_tenant()
    result = BatchResult()
    now = utcnow()
    # 1. Key every row; merge rows that name the same contact (later ones update earlier ones).
    keyed: dict[tuple, dict] = {}
    first_index: dict[tuple, int] = {}
    for index, data in rows:
        email = data.get("email")
        email = email.strip().lower() if email else None
        phone = data.get("phone_number")
        if not email and not phone:
            result.errors.append({"index": index, "code": "invalid_request",
                                  "message": "A contact needs an email or a phone_number.", "param": "email"})
            continue
        data = dict(data)
        if email:
            data["email"] = email
        key = ("e", email) if email else ("p", phone)
        if key in keyed:
            _merge(keyed[key], data)
            result.updated += 1 if update_existing else 0
            result.skipped += 0 if update_existing else 1
        else:
            keyed[key] = data
            first_index[key] = index
    if not keyed:
        return result
    # 2. Never bring back an erased address.
    erased = _erased([k[1] for k in keyed if k[0] == "e"], [k[1] for k in keyed if k[0] == "p"], tenant)
    if erased:
        for key in [k for k in keyed if k[1] in erased]:
            del keyed[key]
            result.skipped += 1
            result.errors.append({"index": first_index[key], "code": "contact_erased", "param": key[0] == "e"
                                  and "email" or "phone_number",
                                  "message": "This address was erased (GDPR) and is suppressed; it is not "
                                             "imported again. Remove the suppression to allow it."})
    # 3. Email-less rows update the newest email-less contact with their phone number.
    phone_ids = _phone_matches([k[1] for k in keyed if k[0] == "p"], tenant)
    # 4. Group by shape and write.
    groups: dict[tuple, list] = {}
    proposed: dict[tuple, str] = {}
    fresh = iter(new_ids("con", len(keyed)))
    for key, data in keyed.items():
        existing_id = phone_ids.get(key[1]) if key[0] == "p" else None
        cid = existing_id or next(fresh)
        proposed[key] = cid
        consent = data.get("consent") or {}
        attributes = data.get("attributes") or {}
        params = {
            "id": cid, "organization_id": tenant.organization_id, "mode": tenant.mode,
            "email": data.get("email"), "attributes": attributes,
            "tags": list(dict.fromkeys(data["tags"])) if "tags" in data else [],
            "consent_email": consent.get("email", "unknown"), "consent_sms": consent.get("sms", "unknown"),
            "metadata": data.get("metadata") or {}, "created_at": now, "updated_at": now,
        }
        for name in _NULLABLE:
            params[name] = data.get(name)
        groups.setdefault((_shape(data), existing_id is not None), []).append((key, params))
    returned = []
    copy = dialect_name() == "postgresql" and len(keyed) >= COPY_THRESHOLD
    if copy:
        _copy_rows([p for items in groups.values() for _, p in items],
                   [n for n, items in enumerate(groups.values()) for _ in items])
    for n, ((shape, by_id), items) in enumerate(groups.items()):
        stmt = _statement(shape, by_id, update_existing, from_group=n if copy else None)
        if copy:
            returned.extend(db.session.execute(stmt).all())
        else:
            returned.extend(db.session.execute(stmt, [p for _, p in items]).all())
    proposed_ids = set(proposed.values())
    phone_existing = set(phone_ids.values())
    created_rows, updated_rows = [], []
    for row in returned:
        if row.id in proposed_ids and row.id not in phone_existing:
            created_rows.append(row)
        else:
            updated_rows.append(row)
    result.imported += len(created_rows)
    result.updated += len(updated_rows)
    result.skipped += len(keyed) - len(returned)  # update_existing=False: the ones that existed
    # 5. A null attribute in the patch of a *new* contact: drop the key (an update already dropped it).
    strip_ids = [r.id for r in created_rows if any(v is None for v in (r.attributes or {}).values())]
    if strip_ids:
        c = _contacts()
        expr = (literal_column("jsonb_strip_nulls(contacts.attributes)") if dialect_name() == "postgresql"
                else literal_column("json_patch('{}', contacts.attributes)"))
        db.session.execute(update(c).where(c.c.id.in_(strip_ids)).values(attributes=expr))
    result.contact_ids = [r.id for r in returned]
    # 6. Static list membership, set-based.
    if list_id and result.contact_ids:
        from ..lists.models import ListMember
        lm = ListMember.__table__
        ins = _insert(lm).on_conflict_do_nothing(index_elements=["list_id", "contact_id"])
        db.session.execute(ins, [{"list_id": list_id, "contact_id": cid, "created_at": now,
                                  "organization_id": tenant.organization_id, "mode": tenant.mode}
                                 for cid in result.contact_ids])
    # 7. Events, one INSERT for the batch.
    if events and returned and dialect_name() == "postgresql":
        _record_contact_events([r.id for r in created_rows], [r.id for r in updated_rows], now)
    elif events and returned:
        record_events(
            [{"type": "contact.created", "contact_id": r.id, "recipient": r.email or r.phone_number,
              "data": _contact_data(r), "occurred_at": now} for r in created_rows]
            + [{"type": "contact.updated", "contact_id": r.id, "recipient": r.email or r.phone_number,
                "data": _contact_data(r), "occurred_at": now} for r in updated_rows])
    return result


_CONTACT_EVENTS = text("""
INSERT INTO events (id, type, organization_id, mode, contact_id, recipient, data, occurred_at)
SELECT 'evt_' || lpad(to_hex(CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS bigint)), 13, '0')
           || substr(replace(CAST(gen_random_uuid() AS text), '-', ''), 1, 15),
       v.type, c.organization_id, c.mode, c.id, coalesce(c.email, c.phone_number),
       jsonb_build_object(
           'id', c.id, 'object', 'contact', 'email', c.email, 'phone_number', c.phone_number,
           'first_name', c.first_name, 'last_name', c.last_name,
           'attributes', coalesce(c.attributes, '{}'), 'tags', coalesce(c.tags, '[]'),
           'consent', jsonb_build_object('email', c.consent_email, 'sms', c.consent_sms),
           'timezone', c.timezone, 'locale', c.locale, 'external_id', c.external_id,
           'metadata', coalesce(c.metadata, '{}'),
           'created_at', to_char(c.created_at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'updated_at', to_char(c.updated_at, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
       :now
FROM unnest(CAST(:contact_ids AS text[]), CAST(:types AS text[])) AS v(contact_id, type)
JOIN contacts c ON c.id = v.contact_id AND c.organization_id = :org AND c.mode = :mode
RETURNING id, type, contact_id, recipient, data
""")


def _record_contact_events(created_ids: list[str], updated_ids: list[str], now) -> None:
    """``contact.created`` / ``contact.updated`` for a batch on PostgreSQL: one INSERT … SELECT from the
    contacts just written, the contact's JSON (``ContactSchema``'s shape, as ``_contact_data`` builds it)
    made by the database from the row as it now is, and time-ordered ids (``evt_`` + µs + 56 random bits,
    like the broadcast fan-out's: appended at the right edge of the events' primary key).  The listeners
    get exactly what was written, from RETURNING — no per-row JSON encoding or id minting in Python."""
    tenant = require_tenant()
    rows = db.session.execute(_CONTACT_EVENTS, {
        "contact_ids": created_ids + updated_ids,
        "types": ["contact.created"] * len(created_ids) + ["contact.updated"] * len(updated_ids),
        "now": now, "org": tenant.organization_id, "mode": tenant.mode}).all()
    events = [{"id": id_, "type": type_, "organization_id": tenant.organization_id, "mode": tenant.mode,
               "message_id": None, "contact_id": contact_id, "recipient": recipient, "data": data,
               "occurred_at": now} for id_, type_, contact_id, recipient, data in rows]
    for listener in _LISTENERS:
        listener(events)


# --- synchronous JSON import --------------------------------------------------------------------------------

def import_contacts(contacts: list, list_id: str | None = None, update_existing: bool = True) -> dict:
    """``POST /contacts/import``: validate every row with the contacts schema, upsert the valid ones in
    batches; a bad row is reported by its index and never aborts the rest."""
    from .rows import RowError, validate_row
    check_list(list_id)
    total = BatchResult()
    valid: list[tuple[int, dict]] = []
    for index, raw in enumerate(contacts):
        try:
            valid.append((index, validate_row(raw)))
        except RowError as err:
            total.errors.append({"index": index, **err.as_dict()})
    for chunk in _chunks(valid, BATCH_SIZE):
        total.add(upsert_batch(chunk, list_id=list_id, update_existing=update_existing))
    total.errors.sort(key=lambda e: e["index"])
    return {"object": "import_result", "imported": total.imported, "updated": total.updated,
            "skipped": total.skipped, "failed": sum(1 for e in total.errors if e["code"] != "contact_erased"),
            "errors": total.errors}


# --- starting jobs ------------------------------------------------------------------------------------------

def start_import(*, stream=None, filename: str | None = None, url: str | None = None, list_id: str | None = None,
                 update_existing: bool = True, max_bytes: int) -> "Job":  # noqa: F821
    """Queue a CSV import from an uploaded file (``stream``, saved to storage now) or from ``url`` (checked
    now, fetched by the worker).  Returns the queued job; its worker is enqueued after commit."""
    from ..bgjobs import service as jobs
    from ..bgjobs.storage import storage
    from ..errors import PayloadTooLarge
    from ..jobs import enqueue_after_commit
    from ..ssrf import check_url
    from .tasks import JOB_TIMEOUT, import_contacts_csv

    tenant = require_tenant()
    check_list(list_id)
    if (stream is None) == (url is None):
        raise ValidationError("Send either a CSV `file` (multipart/form-data) or a `url`.", param="file")
    if url is not None:
        check_url(url, live=tenant.mode == "live", param="url")
    params = {"list_id": list_id, "update_existing": bool(update_existing), "filename": (filename or "")[:200]}
    if url is not None:
        params["url"] = url
    job = jobs.create_job("import", params=params)
    if stream is not None:
        key = f"{tenant.organization_id}/{tenant.mode}/{job.id}/input.csv"
        try:
            storage().save_stream(key, stream, max_bytes=max_bytes)
        except ValueError:
            raise PayloadTooLarge(f"The file is larger than the limit of {max_bytes} bytes.", param="file") from None
        job.params = {**params, "input_key": key}
    enqueue_after_commit(import_contacts_csv, job.id, queue_name="bulk",
                         job_options={"timeout": JOB_TIMEOUT}, tenant=(tenant.organization_id, tenant.mode))
    return job


def start_export(filters: dict) -> "Job":  # noqa: F821
    """Queue an export of the contacts matching ``filters`` (``list_id``, ``tag``)."""
    from ..bgjobs import service as jobs
    from ..jobs import enqueue_after_commit
    from .tasks import JOB_TIMEOUT, export_contacts

    tenant = require_tenant()
    if filters.get("list_id"):
        check_list(filters["list_id"])
    job = jobs.create_job("export", params={k: v for k, v in filters.items() if v is not None})
    enqueue_after_commit(export_contacts, job.id, queue_name="bulk", job_options={"timeout": JOB_TIMEOUT},
                         tenant=(tenant.organization_id, tenant.mode))
    return job


# --- export -------------------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ("id", "email", "phone_number", "first_name", "last_name", "tags", "consent_email",
                  "consent_sms", "timezone", "locale", "external_id", "created_at")
MAX_ATTRIBUTE_COLUMNS = 500


def csv_safe(value) -> str:
    """OWASP's CSV-injection advice: a cell a spreadsheet would run as a formula gets a leading quote."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _export_filter(stmt, table, params: dict):
    tenant = require_tenant()
    stmt = stmt.where(table.c.organization_id == tenant.organization_id, table.c.mode == tenant.mode)
    if params.get("list_id"):
        from ..lists.models import ListMember
        lm = ListMember.__table__
        stmt = stmt.where(table.c.id.in_(select(lm.c.contact_id).where(
            lm.c.list_id == params["list_id"], lm.c.organization_id == tenant.organization_id,
            lm.c.mode == tenant.mode)))
    if params.get("tag"):
        from ..sqlhelpers import json_array_contains
        stmt = stmt.where(json_array_contains(table.c.tags, params["tag"]))
    return stmt


def count_export(params: dict) -> int:
    from sqlalchemy import func
    c = _contacts()
    return db.session.execute(_export_filter(select(func.count()).select_from(c), c, params)).scalar_one()


def _attribute_keys(params: dict) -> list[str]:
    """Every attribute key of the exported contacts (one column each), in name order."""
    from sqlalchemy import func, true
    c = _contacts()
    if dialect_name() == "postgresql":
        stmt = select(func.jsonb_object_keys(c.c.attributes).label("key")).select_from(c)
    else:
        each = func.json_each(c.c.attributes).table_valued("key", "value")
        stmt = select(each.c.key.label("key")).select_from(c.join(each, true()))
    inner = _export_filter(stmt, c, params).subquery()
    return list(db.session.execute(select(inner.c.key).distinct().order_by(inner.c.key)
                                   .limit(MAX_ATTRIBUTE_COLUMNS)).scalars())


def write_export(out, params: dict, batch_size: int = BATCH_SIZE):
    """Write the CSV to the text file ``out``, one keyset batch at a time (``(created_at, id)`` ascending);
    yields the number of rows written after each batch.  Importable again as it is."""
    import csv
    from sqlalchemy import tuple_
    c = _contacts()
    keys = _attribute_keys(params)
    writer = csv.writer(out)
    writer.writerow(list(EXPORT_COLUMNS) + [f"attributes.{k}" for k in keys])
    cols = [c.c.id, c.c.email, c.c.phone_number, c.c.first_name, c.c.last_name, c.c.tags, c.c.consent_email,
            c.c.consent_sms, c.c.timezone, c.c.locale, c.c.external_id, c.c.created_at, c.c.attributes]
    after = None
    written = 0
    while True:
        stmt = _export_filter(select(*cols), c, params)
        if after is not None:
            stmt = stmt.where(tuple_(c.c.created_at, c.c.id) > tuple_(bindparam("a_ts", after[0]),
                                                                      bindparam("a_id", after[1])))
        rows = db.session.execute(stmt.order_by(c.c.created_at, c.c.id).limit(batch_size)).all()
        if not rows:
            break
        for r in rows:
            attrs = r.attributes or {}
            writer.writerow([csv_safe(r.id), csv_safe(r.email), csv_safe(r.phone_number), csv_safe(r.first_name),
                             csv_safe(r.last_name), csv_safe(";".join(r.tags or [])), r.consent_email,
                             r.consent_sms, csv_safe(r.timezone), csv_safe(r.locale), csv_safe(r.external_id),
                             rfc3339(r.created_at)]
                            + [csv_safe(_attr_text(attrs.get(k))) for k in keys])
        written += len(rows)
        after = (rows[-1].created_at, rows[-1].id)
        yield written
        if len(rows) < batch_size:
            break


def _attr_text(value) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)
