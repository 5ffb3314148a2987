"""Compile ``segment_rules`` (API.md section 4) into ONE SQLAlchemy WHERE clause over ``contacts``.

Two rule forms are accepted:

* the short form (seed 004) ``{"tags": ["beta"], "attributes": {"plan": "pro"}}``: every tag, and every
  attribute equal to its value;
* the condition form ``{"match": "all" | "any", "conditions": [{"field", "op", "value"}, …]}`` with fields
  ``email tags first_name last_name attributes.<key> consent.email consent.sms created_at timezone risk
  score events.<type>.count_<N>d`` and ops ``eq neq in contains gt gte lt lte exists not_exists``.

Semantics (the unit test checks them against a brute-force evaluation in Python, on both dialects):

* ``neq`` is the negation of ``eq``: a contact without the field matches ``neq``.
* ``attributes.<key>`` compares by the JSON type of the rule's value: a number matches numbers
  numerically (``30`` = ``30.0``, ``gt 9`` is numeric, never lexical), a string matches strings, a boolean
  booleans.  ``gt``/``lt`` with a string compare strings by code point (ISO dates sort right).
* ``contains`` is a case-insensitive substring test on text fields, and "has this tag" on ``tags``;
  ``eq`` on ``tags`` is the same, ``neq`` is "lacks the tag", ``in`` is "has any of".
* ``exists`` means present and not null (nor an empty string, nor an empty tag list).
* ``created_at`` takes an RFC 3339 time, a date, or a relative ``-30d`` / ``-12h`` (before now).
* ``risk`` bands are ordered ``low < medium < high`` for ``gt``…``lte``.
* ``events.<type>.count_<N>d`` is the number of events of that type for the contact in the last N days.

The clause is portable: JSONB operators on PostgreSQL (``@>`` containment, which the GIN indexes on
``attributes`` and ``tags`` serve), JSON1 (``json_each``) on SQLite.  Event counts are written as
``contacts.id [NOT] IN (SELECT contact_id FROM events … GROUP BY contact_id HAVING count(*) >= k)``: one
pass over the (indexed) recent events instead of a correlated count per contact, which is what keeps a
segment over a million contacts fast.  The event subqueries carry the tenant conditions explicitly, since
the clause is also embedded in Core INSERT … SELECT statements that the ORM tenancy listener never sees.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import Numeric, String, and_, case, cast, exists, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB

from ..errors import ValidationError
from ..timeutil import utcnow

FIELDS_SIMPLE = ("email", "tags", "first_name", "last_name", "consent.email", "consent.sms", "created_at",
                 "timezone", "risk", "score")
OPS = ("eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists", "not_exists")
CONSENT = ("subscribed", "unsubscribed", "unknown")
RISK_BANDS = ("low", "medium", "high")
MAX_CONDITIONS = 50
MAX_IN_VALUES = 100
MAX_STRING = 1000
MAX_EVENT_DAYS = 3650
MAX_NUMBER = 2 ** 53  # beyond this a float is no longer exact (and SQLite integers overflow)

_EVENTS_FIELD = re.compile(r"^events\.(?P<type>[A-Za-z0-9_.:\-]{1,40})\.count_(?P<days>[0-9]{1,4})d$")
_ATTR_FIELD = re.compile(r"^attributes\.(?P<key>.{1,100})$", re.S)
_RELATIVE = re.compile(r"^-(?P<n>[0-9]{1,5})(?P<unit>[dhm])$")

_STRING_FIELDS = ("email", "first_name", "last_name", "timezone")
_ORDER_OPS = ("gt", "gte", "lt", "lte")
FIELD_OPS = {  # the ops each field (kind) takes
    "email": ("eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "first_name": ("eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "last_name": ("eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "timezone": ("eq", "neq", "in", "contains", "exists", "not_exists"),
    "tags": ("eq", "neq", "in", "contains", "exists", "not_exists"),
    "consent.email": ("eq", "neq", "in"),
    "consent.sms": ("eq", "neq", "in"),
    "created_at": ("gt", "gte", "lt", "lte"),
    "risk": ("eq", "neq", "in", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "score": ("eq", "neq", "in", "gt", "gte", "lt", "lte", "exists", "not_exists"),
    "attributes": OPS,
    "events": ("eq", "neq", "in", "gt", "gte", "lt", "lte", "exists", "not_exists"),
}


@dataclass(frozen=True)
class Condition:
    field: str          # as written
    kind: str           # email|first_name|…|attributes|events
    op: str
    value: object       # normalised (datetime for created_at, list for in, …)
    key: str | None = None        # attribute key
    event_type: str | None = None
    days: int | None = None


@dataclass(frozen=True)
class Segment:
    match: str
    conditions: tuple[Condition, ...]


# ---------------------------------------------------------------------------------------------- validation

def _bad(message: str, param: str, code: str = "invalid_segment_rules"):
    return ValidationError(message, code=code, param=param)


def _check_string(value, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"'{param}' must be a string.", param)
    if len(value) > MAX_STRING:
        raise _bad(f"'{param}' must be at most {MAX_STRING} characters.", param)
    if "\x00" in value:
        raise _bad(f"'{param}' may not contain NUL characters.", param)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (valid in JSON escapes, not in PostgreSQL text)
        raise _bad(f"'{param}' is not valid Unicode text.", param) from None
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_number(value, param: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"'{param}' must be a number.", param)
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(f"'{param}' must be a finite number.", param)
    if abs(value) > MAX_NUMBER:
        raise _bad(f"'{param}' must be between -2^53 and 2^53.", param)
    return value


def _check_scalar(value, param: str):
    """An attribute value: string, number or boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _check_number(value, param)
    if isinstance(value, str):
        return _check_string(value, param)
    raise _bad(f"'{param}' must be a string, number or boolean.", param)


def _parse_time(value, param: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"'{param}' must be an RFC 3339 time, a date, or a relative time such as -30d.", param)
    rel = _RELATIVE.match(value.strip())
    if rel:
        n = int(rel.group("n"))
        delta = {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[rel.group("unit")]
        if delta > timedelta(days=365 * 200):
            raise _bad(f"'{param}' is too far in the past.", param)
        return utcnow() - delta
    text = value.strip()
    try:
        if len(text) == 10:
            parsed = datetime.strptime(text, "%Y-%m-%d")
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad(f"'{param}' must be an RFC 3339 time, a date, or a relative time such as -30d.",
                   param) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            raise _bad(f"'{param}' is out of range.", param) from None
    return parsed


def _value_for(kind: str, op: str, value, param: str):
    """Check ``value`` for a (field kind, op) pair and return its normalised form."""
    if op in ("exists", "not_exists"):
        if value is not None:
            raise _bad(f"'{param}' must be omitted (or null) for op '{op}'.", param)
        return None
    if value is None:
        raise _bad(f"'{param}' is required for op '{op}'.", param)
    if op == "in":
        if not isinstance(value, list) or not value:
            raise _bad(f"'{param}' must be a non-empty list for op 'in'.", param)
        if len(value) > MAX_IN_VALUES:
            raise _bad(f"'{param}' may hold at most {MAX_IN_VALUES} values.", param)
        return tuple(_value_for(kind, "eq", item, f"{param}[{i}]") for i, item in enumerate(value))
    if kind in _STRING_FIELDS:
        text = _check_string(value, param)
        return text.lower() if kind == "email" and op in ("eq", "neq", "contains") else text
    if kind == "tags":
        text = _check_string(value, param)
        if not text or len(text) > 100:
            raise _bad(f"'{param}' must be a tag of 1–100 characters.", param)
        return text
    if kind in ("consent.email", "consent.sms"):
        if value is True:
            return "subscribed"
        if value is False:
            return "unsubscribed"
        if value not in CONSENT:
            raise _bad(f"'{param}' must be one of {', '.join(CONSENT)} (or a boolean).", param)
        return value
    if kind == "created_at":
        return _parse_time(value, param)
    if kind == "risk":
        if value not in RISK_BANDS:
            raise _bad(f"'{param}' must be one of {', '.join(RISK_BANDS)}.", param)
        return value
    if kind == "score":
        return _check_number(value, param)
    if kind == "events":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > MAX_NUMBER:
            raise _bad(f"'{param}' must be a whole number of events (0 or more).", param)
        return value
    # attributes
    scalar = _check_scalar(value, param)
    if op == "contains" and not isinstance(scalar, str):
        raise _bad(f"'{param}' must be a string for op 'contains'.", param)
    if op in _ORDER_OPS and isinstance(scalar, bool):
        raise _bad(f"'{param}' must be a number or a string for op '{op}'.", param)
    return scalar


def _condition(raw, param: str) -> Condition:
    if not isinstance(raw, dict):
        raise _bad(f"'{param}' must be an object {{field, op, value}}.", param)
    unknown = sorted(set(raw) - {"field", "op", "value"})
    if unknown:
        raise _bad(f"Unknown field '{param}.{unknown[0]}'.", f"{param}.{unknown[0]}")
    field, op = raw.get("field"), raw.get("op")
    if not isinstance(field, str) or not field:
        raise _bad(f"'{param}.field' is required.", f"{param}.field")
    kind, key, event_type, days = field, None, None, None
    if field in FIELDS_SIMPLE:
        pass
    elif (m := _EVENTS_FIELD.match(field)) is not None:
        kind, event_type, days = "events", m.group("type"), int(m.group("days"))
        if not 1 <= days <= MAX_EVENT_DAYS:
            raise _bad(f"'{param}.field' must count events over 1–{MAX_EVENT_DAYS} days.", f"{param}.field")
    elif (m := _ATTR_FIELD.match(field)) is not None and "\x00" not in field and _utf8(field):
        kind, key = "attributes", m.group("key")
    else:
        raise _bad(f"'{param}.field' must be one of {', '.join(FIELDS_SIMPLE)}, attributes.<key> or "
                   "events.<type>.count_<N>d.", f"{param}.field")
    if not isinstance(op, str) or op not in OPS:
        raise _bad(f"'{param}.op' must be one of {', '.join(OPS)}.", f"{param}.op")
    if op not in FIELD_OPS[kind]:
        raise _bad(f"'{param}.op' {op} does not apply to {field}; use one of {', '.join(FIELD_OPS[kind])}.",
                   f"{param}.op")
    value = _value_for(kind, op, raw.get("value"), f"{param}.value")
    return Condition(field=field, kind=kind, op=op, value=value, key=key, event_type=event_type, days=days)


def parse_rules(rules, param: str = "segment_rules") -> Segment:
    """Validate ``rules`` (either form) and return the normalised :class:`Segment`.
    Raises ValidationError ``invalid_segment_rules`` naming the offending ``param``
    (e.g. ``segment_rules.conditions[2].op``)."""
    if not isinstance(rules, dict):
        raise _bad(f"'{param}' must be an object.", param)
    if "conditions" in rules or "match" in rules:
        unknown = sorted(set(rules) - {"match", "conditions"})
        if unknown:
            raise _bad(f"Unknown field '{param}.{unknown[0]}' (use either the short form {{tags, attributes}} "
                       "or {match, conditions}).", f"{param}.{unknown[0]}")
        match = rules.get("match", "all")
        if match not in ("all", "any"):
            raise _bad(f"'{param}.match' must be 'all' or 'any'.", f"{param}.match")
        conditions = rules.get("conditions", [])
        if not isinstance(conditions, list):
            raise _bad(f"'{param}.conditions' must be a list.", f"{param}.conditions")
        if len(conditions) > MAX_CONDITIONS:
            raise _bad(f"'{param}.conditions' may hold at most {MAX_CONDITIONS} conditions.", f"{param}.conditions")
        return Segment(match, tuple(_condition(c, f"{param}.conditions[{i}]") for i, c in enumerate(conditions)))
    unknown = sorted(set(rules) - {"tags", "attributes"})
    if unknown:
        raise _bad(f"Unknown field '{param}.{unknown[0]}' (the short form takes tags and attributes; the long "
                   "form match and conditions).", f"{param}.{unknown[0]}")
    out: list[Condition] = []
    tags = rules.get("tags", [])
    if not isinstance(tags, list):
        raise _bad(f"'{param}.tags' must be a list of strings.", f"{param}.tags")
    attributes = rules.get("attributes", {})
    if not isinstance(attributes, dict):
        raise _bad(f"'{param}.attributes' must be an object.", f"{param}.attributes")
    if len(tags) + len(attributes) > MAX_CONDITIONS:
        raise _bad(f"'{param}' may hold at most {MAX_CONDITIONS} tags and attributes together.", param)
    for i, tag in enumerate(tags):
        out.append(Condition("tags", "tags", "contains", _value_for("tags", "contains", tag, f"{param}.tags[{i}]")))
    for key, value in attributes.items():
        if not key or len(key) > 100 or "\x00" in key or not _utf8(key):
            raise _bad(f"'{param}.attributes' keys must be 1–100 characters.", f"{param}.attributes")
        out.append(Condition(f"attributes.{key}", "attributes", "eq",
                             _value_for("attributes", "eq", value, f"{param}.attributes.{key}"), key=key))
    return Segment("all", tuple(out))


def validate_rules(rules, param: str = "segment_rules") -> dict:
    """``rules`` checked (raises like :func:`parse_rules`) and returned as given, for storing."""
    parse_rules(rules, param)
    return rules


# ---------------------------------------------------------------------------------------------- compiling

def _like_pattern(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _contains_ci(expr, text: str):
    return func.lower(expr).like(_like_pattern(text), escape="\\")


class _Compiler:
    def __init__(self, dialect: str, organization_id: str, mode: str, contacts, events, correlated: bool = False,
                 windows: dict | None = None):
        self.correlated = correlated
        self.pg = dialect == "postgresql"
        self.org, self.mode = organization_id, mode
        self.c = contacts.c
        self.events = events
        self.windows = windows or {}  # (type, days) -> as_of of the rollup (app.segments.rollup)
        self.now = utcnow()

    # -- helpers
    def _ordered(self, expr, op: str, value):
        return {"gt": expr > value, "gte": expr >= value, "lt": expr < value, "lte": expr <= value}[op]

    def _text(self, expr):
        """Code-point ordering for gt/lt on text (PostgreSQL's default collation is locale-aware)."""
        return expr.collate("C") if self.pg else expr

    # -- plain columns
    def string(self, col, cond: Condition):
        op, v = cond.op, cond.value
        if op == "eq":
            return col == v
        if op == "neq":
            return or_(col.is_(None), col != v)
        if op == "in":
            return col.in_(list(v))
        if op == "contains":
            return _contains_ci(col, v)
        if op == "exists":
            return and_(col.is_not(None), col != "")
        if op == "not_exists":
            return or_(col.is_(None), col == "")
        return self._ordered(self._text(col), op, v)

    def consent(self, col, cond: Condition):
        if cond.op == "eq":
            return col == cond.value
        if cond.op == "neq":
            return col != cond.value
        return col.in_(list(cond.value))

    def created_at(self, cond: Condition):
        return self._ordered(self.c.created_at, cond.op, cond.value)

    def score(self, cond: Condition):
        col, op, v = self.c.score, cond.op, cond.value
        if op == "eq":
            return col == v
        if op == "neq":
            return or_(col.is_(None), col != v)
        if op == "in":
            return col.in_(list(v))
        if op == "exists":
            return col.is_not(None)
        if op == "not_exists":
            return col.is_(None)
        return self._ordered(col, op, v)

    def risk(self, cond: Condition):
        col, op, v = self.c.risk, cond.op, cond.value
        if op in _ORDER_OPS:
            rank = case({band: i for i, band in enumerate(RISK_BANDS)}, value=col)
            return self._ordered(rank, op, RISK_BANDS.index(v))
        return self.string(col, cond)

    def tags(self, cond: Condition):
        col, op, v = self.c.tags, cond.op, cond.value
        if op in ("eq", "contains"):
            return self._has_tag(v)
        if op == "neq":
            return not_(self._has_tag(v))
        if op == "in":
            return or_(*[self._has_tag(t) for t in v])
        length = func.jsonb_array_length(col) if self.pg else func.json_array_length(col)
        return length > 0 if op == "exists" else func.coalesce(length, 0) == 0

    def _has_tag(self, tag: str):
        if self.pg:
            return self.c.tags.bool_op("@>")(cast(literal(json.dumps([tag])), JSONB))
        each = func.json_each(self.c.tags).table_valued("value")
        return exists(select(literal(1)).select_from(each).where(each.c.value == tag))

    # -- attributes
    def attribute(self, cond: Condition):
        key, op, v = cond.key, cond.op, cond.value
        if op == "neq":
            return not_(self._attr_eq(key, v))
        if op == "eq":
            return self._attr_eq(key, v)
        if op == "in":
            return or_(*[self._attr_eq(key, item) for item in v])
        return self._pg_attr(key, op, v) if self.pg else self._sqlite_attr(key, op, v)

    def _attr_eq(self, key: str, value):
        if self.pg:
            # Containment: served by the GIN (jsonb_path_ops) index; jsonb compares numbers numerically.
            return self.c.attributes.bool_op("@>")(cast(literal(json.dumps({key: value})), JSONB))
        return self._sqlite_attr(key, "eq", value)

    def _pg_attr(self, key: str, op: str, v):
        node = self.c.attributes.op("->", return_type=JSONB)(literal(key, String))
        kind = func.jsonb_typeof(node)
        text = self.c.attributes.op("->>", return_type=String)(literal(key, String))
        if op == "exists":
            return func.coalesce(kind, "null") != "null"
        if op == "not_exists":
            return func.coalesce(kind, "null") == "null"
        if op == "contains":
            return and_(kind == "string", _contains_ci(text, v))
        if isinstance(v, str):
            return self._ordered(case((kind == "string", text), else_=None).collate("C"), op, v)
        number = case((kind == "number", cast(text, Numeric)), else_=None)  # CASE: never casts a non-number
        return self._ordered(number, op, literal(Decimal(str(v)), Numeric))

    def _sqlite_attr(self, key: str, op: str, v):
        each = func.json_each(self.c.attributes).table_valued("key", "type", "atom")
        if op == "exists":
            cond = each.c.type != "null"
        elif op == "not_exists":
            return not_(self._sqlite_attr(key, "exists", None))
        elif op == "contains":
            cond = and_(each.c.type == "text", _contains_ci(each.c.atom, v))
        elif isinstance(v, bool):
            cond = each.c.type == ("true" if v else "false")
        elif isinstance(v, str):
            cond = and_(each.c.type == "text", each.c.atom == v if op == "eq" else self._ordered(each.c.atom, op, v))
        else:
            numeric = each.c.type.in_(("integer", "real"))
            value = literal(v)
            cond = and_(numeric, each.c.atom == value if op == "eq" else self._ordered(each.c.atom, op, value))
        return exists(select(literal(1)).select_from(each).where(each.c.key == key, cond))

    # -- events
    def _at_least(self, cond: Condition, k: int):
        """``contacts.id IN`` the contacts with at least ``k`` events of the type in the window."""
        if k <= 0:
            return true()
        as_of = self.windows.get((cond.event_type, cond.days))
        if as_of is not None and as_of <= self.now:
            return self._at_least_rolled_up(cond, k, as_of)
        e = self.events.c
        since = self.now - timedelta(days=cond.days)
        sub = (select(e.contact_id)
               .where(e.organization_id == self.org, e.mode == self.mode, e.type == cond.event_type,
                      e.occurred_at >= since, e.contact_id.is_not(None)))
        if k == 1:
            sub = sub.distinct()
        else:
            sub = sub.group_by(e.contact_id).having(func.count() >= k)
        return self.c.id.in_(sub)

    def _at_least_rolled_up(self, cond: Condition, k: int, as_of: datetime):
        """The same from the window's stored counts as of ``as_of`` (one row per contact, no grouping),
        corrected with the raw events since ``as_of`` and minus those of the same span that have left the
        window since: exact (see app.segments.rollup)."""
        from .models import EventWindowCount

        e, r = self.events.c, EventWindowCount.__table__.c
        since = self.now - timedelta(days=cond.days)
        mine = [e.organization_id == self.org, e.mode == self.mode, e.type == cond.event_type,
                e.contact_id.is_not(None)]
        stored = (select(r.contact_id, r.count.label("n"))
                  .where(r.organization_id == self.org, r.mode == self.mode, r.type == cond.event_type,
                         r.days == cond.days).subquery("stored"))
        tail = select(e.contact_id, literal(1).label("n")).where(*mine, e.occurred_at >= as_of)
        head = select(e.contact_id, literal(-1).label("n")).where(
            *mine, e.occurred_at >= as_of - timedelta(days=cond.days), e.occurred_at < since)
        moves = tail.union_all(head).subquery("moves")
        delta = (select(moves.c.contact_id, func.sum(moves.c.n).label("d"))
                 .group_by(moves.c.contact_id).subquery("delta"))
        n = func.coalesce(stored.c.n, 0) + func.coalesce(delta.c.d, 0)
        sub = (select(func.coalesce(stored.c.contact_id, delta.c.contact_id))
               .select_from(stored.outerjoin(delta, stored.c.contact_id == delta.c.contact_id, full=True))
               .where(n >= k))
        return self.c.id.in_(sub)

    def _correlated_count(self, cond: Condition):
        """The contact's own count, through ``ix_events_contact``: for evaluating a handful of contacts."""
        e = self.events.c
        since = self.now - timedelta(days=cond.days)
        return (select(func.count()).select_from(self.events)
                .where(e.contact_id == self.c.id, e.organization_id == self.org, e.mode == self.mode,
                       e.type == cond.event_type, e.occurred_at >= since).scalar_subquery())

    def events_count(self, cond: Condition):
        op, v = cond.op, cond.value
        if self.correlated:
            n = self._correlated_count(cond)
            if op == "exists":
                return n > 0
            if op == "not_exists":
                return n == 0
            if op == "in":
                return n.in_(list(v))
            if op == "eq":
                return n == v
            if op == "neq":
                return n != v
            return self._ordered(n, op, v)
        if op == "exists":
            return self._at_least(cond, 1)
        if op == "not_exists":
            return not_(self._at_least(cond, 1))
        if op == "in":
            return or_(*[self.events_count(Condition(cond.field, "events", "eq", item, event_type=cond.event_type,
                                                     days=cond.days)) for item in v])
        if op == "eq":
            return and_(self._at_least(cond, v), not_(self._at_least(cond, v + 1)))
        if op == "neq":
            return not_(self.events_count(Condition(cond.field, "events", "eq", v, event_type=cond.event_type,
                                                    days=cond.days)))
        if op == "gt":
            return self._at_least(cond, v + 1)
        if op == "gte":
            return self._at_least(cond, v)
        if op == "lt":
            return not_(self._at_least(cond, v))
        return not_(self._at_least(cond, v + 1))  # lte

    def condition(self, cond: Condition):
        kind = cond.kind
        if kind in _STRING_FIELDS:
            return self.string(self.c[kind], cond)
        if kind == "consent.email":
            return self.consent(self.c.consent_email, cond)
        if kind == "consent.sms":
            return self.consent(self.c.consent_sms, cond)
        if kind == "created_at":
            return self.created_at(cond)
        if kind == "score":
            return self.score(cond)
        if kind == "risk":
            return self.risk(cond)
        if kind == "tags":
            return self.tags(cond)
        if kind == "attributes":
            return self.attribute(cond)
        return self.events_count(cond)


def compile_segment(segment: Segment, *, organization_id: str, mode: str, dialect: str | None = None,
                    correlated: bool = False, rollup: bool | dict = True):
    """The WHERE clause (over the ``contacts`` table) of ``segment``.  It does not include the tenant
    conditions on ``contacts`` itself (the caller adds them, or the ORM listener does); event subqueries
    carry them.  ``correlated`` counts events per contact (an index probe each) instead of aggregating the
    type's recent events once: right when the clause is evaluated for one or a few contacts.

    Event counts read the rollup (app.segments.rollup) for the windows it maintains — ``rollup=True``
    looks them up (one small query, only when the segment counts events); a dict ``{(type, days): as_of}``
    gives them; False reads raw events only.  The result is the same either way."""
    from ..contacts.models import Contact
    from ..events.models import Event
    if dialect is None:
        from ..sqlhelpers import dialect_name
        dialect = dialect_name()
    windows = rollup if isinstance(rollup, dict) else {}
    if rollup is True and not correlated:
        pairs = {(c.event_type, c.days) for c in segment.conditions if c.kind == "events"}
        if pairs:
            from .rollup import window_states
            windows = window_states(organization_id, mode, pairs)
    compiler = _Compiler(dialect, organization_id, mode, Contact.__table__, Event.__table__, correlated, windows)
    clauses = [compiler.condition(c) for c in segment.conditions]
    if not clauses:
        return true()
    return and_(*clauses) if segment.match == "all" else or_(*clauses)


def compile_rules(rules, *, organization_id: str, mode: str, dialect: str | None = None, correlated: bool = False,
                  rollup: bool | dict = True):
    """Validate and compile ``rules`` in one step (see :func:`compile_segment`)."""
    return compile_segment(parse_rules(rules), organization_id=organization_id, mode=mode, dialect=dialect,
                           correlated=correlated, rollup=rollup)


def _loose_values(text: str) -> list:
    """The typed values a query-string ``attributes[KEY]=VALUE`` stands for: the string itself, and the
    number or boolean it spells (``799`` matches 799 and "799"; ``true`` matches true and "true")."""
    values: list = [text]
    if text in ("true", "false"):
        values.append(text == "true")
    elif re.fullmatch(r"-?[0-9]{1,15}", text):
        values.append(int(text))
    elif re.fullmatch(r"-?[0-9]{0,15}\.[0-9]{1,15}", text) and text not in ("-.", "."):
        values.append(float(text))
    return values


def attribute_equals_text(key: str, text: str, *, dialect: str | None = None):
    """``attributes[key]`` equals ``text`` read loosely (see :func:`_loose_values`), for ``GET /contacts``'s
    ``attributes[KEY]=VALUE`` filter.  On PostgreSQL: containment, served by the GIN index."""
    from ..contacts.models import Contact
    if dialect is None:
        from ..sqlhelpers import dialect_name
        dialect = dialect_name()
    compiler = _Compiler(dialect, "", "", Contact.__table__, None)
    return or_(*[compiler._attr_eq(key, value) for value in _loose_values(text)])
