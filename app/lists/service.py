"""Lists: static (explicit members) and dynamic (``segment_rules``, compiled by app.segments).

``audience_select(list_id)`` is the one definition of "who is on this list", used by the members endpoint,
the counts and the broadcasts' fan-out (``INSERT INTO messages … SELECT … WHERE contacts.id IN
(audience_select(…))``).  It writes the tenant conditions into the statement itself, so it stays correct
when embedded in a Core statement that the ORM tenancy listener never sees.

Member changes are set-based: one INSERT … SELECT … ON CONFLICT DO NOTHING for up to 1,000 contacts, one
existence check for all of them.  Tenant scoping of ORM reads comes from app.tenancy, as everywhere.
"""
from __future__ import annotations

from sqlalchemy import Select, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ..contacts.models import Contact
from ..errors import Conflict, NotFound, UnprocessableError, ValidationError
from ..extensions import db
from ..segments.compiler import compile_segment, parse_rules
from ..sqlhelpers import dialect_name
from ..tenancy import require_tenant
from ..timeutil import utcnow
from .models import LIST_TYPES, ContactList, ListMember

MAX_MEMBERS_PER_CALL = 1000
_contacts = Contact.__table__
_members = ListMember.__table__


def get_list(list_id: str, param: str = "id") -> ContactList:
    """The list with this id in the current tenant, or NotFound naming ``param``."""
    found = db.session.get(ContactList, list_id) if isinstance(list_id, str) and list_id else None
    if found is None:
        raise NotFound("No such list.", param=param)
    return found


def segment_clause(rules):
    """The WHERE clause over ``contacts`` for ``rules`` (validated; raises ValidationError), with the
    tenant's conditions on contacts included."""
    tenant = require_tenant()
    return (_contacts.c.organization_id == tenant.organization_id) & (_contacts.c.mode == tenant.mode) & \
        compile_segment(parse_rules(rules), organization_id=tenant.organization_id, mode=tenant.mode)


def _audience(lst: ContactList) -> Select:
    tenant = require_tenant()
    if lst.list_type == "dynamic":
        return select(_contacts.c.id.label("contact_id")).where(segment_clause(lst.segment_rules or {}))
    return select(_members.c.contact_id.label("contact_id")).where(
        _members.c.organization_id == tenant.organization_id, _members.c.mode == tenant.mode,
        _members.c.list_id == lst.id)


def audience_select(list_id: str) -> Select:
    """A Core SELECT of one column, ``contact_id``: every member of the list (static: its list_members;
    dynamic: the contacts its segment matches now).  Tenant conditions are explicit in the statement.
    Raises NotFound (param ``list_id``) for an unknown list."""
    return _audience(get_list(list_id, param="list_id"))


# ---------------------------------------------------------------------------------------------- counts

def _tune_for_event_counts(*segments) -> None:
    """Event-count conditions build one hash of the contacts that qualify (a hashed subplan, from the
    rollup's stored window plus the raw tail, or from raw events).  In a parallel plan every worker rebuilds
    that hash, and with the default work_mem it spills to disk: give it room, and use at most one worker.
    Measured in bench/audience.py at 1M contacts on 2 cores: with no worker the pass over the contacts
    dominates (≈ 470 / 570 ms for the two event segments); with one, 315 / 350 ms; with two, 520 / 590 ms
    (three processes on two cores, each building the hash).  SET LOCAL: this transaction only, PostgreSQL
    only."""
    if dialect_name() != "postgresql":
        return
    if any(c.kind == "events" for seg in segments for c in seg.conditions):
        db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 1"))
        db.session.execute(text("SET LOCAL work_mem = '64MB'"))


def count_segment(rules) -> int:
    """How many contacts ``rules`` matches now (the rule builder's live count)."""
    clause = segment_clause(rules)
    _tune_for_event_counts(parse_rules(rules))
    return db.session.execute(select(func.count()).select_from(_contacts).where(clause)).scalar_one()


def member_count(lst: ContactList) -> int:
    if lst.list_type == "dynamic":
        return count_segment(lst.segment_rules or {})
    tenant = require_tenant()
    return db.session.execute(select(func.count()).select_from(_members).where(
        _members.c.organization_id == tenant.organization_id, _members.c.mode == tenant.mode,
        _members.c.list_id == lst.id)).scalar_one()


def attach_member_counts(lists: list[ContactList]) -> list[ContactList]:
    """Set ``member_count`` on each list with two statements whatever the page size: one GROUP BY over
    list_members for the static lists, and one pass over contacts with a ``count(*) FILTER (WHERE …)`` per
    dynamic list (one scan of the tenant's contacts rather than one per list)."""
    tenant = require_tenant()
    static = [lst.id for lst in lists if lst.list_type != "dynamic"]
    dynamic = [lst for lst in lists if lst.list_type == "dynamic"]
    counts: dict[str, int] = {}
    if static:
        rows = db.session.execute(
            select(_members.c.list_id, func.count()).where(
                _members.c.organization_id == tenant.organization_id, _members.c.mode == tenant.mode,
                _members.c.list_id.in_(static)).group_by(_members.c.list_id))
        counts.update({list_id: n for list_id, n in rows})
    if len(dynamic) == 1:
        counts[dynamic[0].id] = member_count(dynamic[0])
    elif dynamic:
        _tune_for_event_counts(*(parse_rules(lst.segment_rules or {}) for lst in dynamic))
        columns = [func.count().filter(compile_segment(parse_rules(lst.segment_rules or {}),
                                                       organization_id=tenant.organization_id,
                                                       mode=tenant.mode)).label(f"c{i}")
                   for i, lst in enumerate(dynamic)]
        row = db.session.execute(select(*columns).select_from(_contacts).where(
            _contacts.c.organization_id == tenant.organization_id, _contacts.c.mode == tenant.mode)).one()
        counts.update({lst.id: row[i] for i, lst in enumerate(dynamic)})
    for lst in lists:
        lst.member_count = counts.get(lst.id, 0)
    return lists


# ---------------------------------------------------------------------------------------------- lists CRUD

def _check_type_and_rules(list_type: str, rules, rules_given: bool) -> None:
    if list_type not in LIST_TYPES:
        raise ValidationError("list_type must be static or dynamic.", param="list_type")
    if list_type == "dynamic":
        if rules is None:
            raise ValidationError("A dynamic list needs segment_rules.", param="segment_rules")
        parse_rules(rules)
    elif rules_given and rules is not None:
        raise ValidationError("segment_rules apply only to dynamic lists; a static list holds the contacts "
                              "you add to it.", param="segment_rules")


def create_list(data: dict) -> ContactList:
    """Create a list; a dynamic one must carry valid ``segment_rules`` (ValidationError naming the
    offending param), a static one must not."""
    list_type = data.get("list_type", "static")
    _check_type_and_rules(list_type, data.get("segment_rules"), "segment_rules" in data)
    lst = ContactList(name=data["name"], description=data.get("description"), list_type=list_type,
                      segment_rules=data.get("segment_rules") if list_type == "dynamic" else None,
                      metadata_=data.get("metadata") or {})
    db.session.add(lst)
    db.session.flush()
    return attach_member_counts([lst])[0]


def list_lists_query(list_type: str | None = None):
    stmt = select(ContactList)
    if list_type:
        stmt = stmt.where(ContactList.list_type == list_type)
    return stmt


def get_list_with_count(list_id: str) -> ContactList:
    return attach_member_counts([get_list(list_id)])[0]


def update_list(list_id: str, data: dict) -> ContactList:
    """Rename, describe, re-tag or change a dynamic list's rules.  ``list_type`` cannot change (it would
    silently drop or invent members): that is a 400 naming ``list_type``."""
    lst = get_list(list_id)
    if "list_type" in data and data["list_type"] != lst.list_type:
        raise ValidationError("A list's list_type cannot change; create a new list instead.", param="list_type")
    if "segment_rules" in data:
        _check_type_and_rules(lst.list_type, data["segment_rules"], True)
        if lst.list_type == "dynamic":
            lst.segment_rules = data["segment_rules"]
    for field in ("name", "description"):
        if field in data:
            if field == "name" and not data[field]:
                raise ValidationError("name cannot be empty.", param="name")
            setattr(lst, field, data[field])
    if "metadata" in data:
        lst.metadata_ = data["metadata"] or {}
    lst.updated_at = utcnow()
    db.session.flush()
    return attach_member_counts([lst])[0]


def delete_list(list_id: str) -> str:
    """Delete the list and its memberships (the contacts stay)."""
    lst = get_list(list_id)
    tenant = require_tenant()
    db.session.execute(delete(_members).where(
        _members.c.organization_id == tenant.organization_id, _members.c.mode == tenant.mode,
        _members.c.list_id == lst.id))
    db.session.delete(lst)
    db.session.flush()
    return lst.id


# ---------------------------------------------------------------------------------------------- members

def _static(lst: ContactList) -> None:
    if lst.list_type == "dynamic":
        raise UnprocessableError("This is a dynamic list: its members are the contacts its segment_rules "
                                 "match. Change the rules, or use a static list.", code="dynamic_list")


def add_members(list_id: str, contact_ids: list[str], *, single: bool = False) -> dict:
    """Add up to 1,000 contacts to a static list in one statement.  Unknown contact → NotFound (param
    ``contact_id``, or ``contact_ids[i]``); a dynamic list → 422 ``dynamic_list``; with ``single``, a
    contact already there → 409 ``duplicate_member``.  Returns ``{added, already_members}``."""
    lst = get_list(list_id)
    _static(lst)
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        raise ValidationError("Give contact_id or a non-empty contact_ids.", param="contact_ids")
    if len(ids) > MAX_MEMBERS_PER_CALL:
        raise ValidationError(f"At most {MAX_MEMBERS_PER_CALL} contacts per call.", param="contact_ids")
    tenant = require_tenant()
    found = set(db.session.execute(select(Contact.id).where(Contact.id.in_(ids))).scalars())
    for i, contact_id in enumerate(contact_ids):
        if contact_id not in found:
            raise NotFound(f"No such contact: {contact_id!r}.",
                           param="contact_id" if single else f"contact_ids[{i}]")
    now = utcnow()
    rows = [{"list_id": lst.id, "contact_id": cid, "organization_id": tenant.organization_id,
             "mode": tenant.mode, "created_at": now} for cid in ids]
    ins = (postgresql.insert(_members) if dialect_name() == "postgresql" else sqlite.insert(_members))
    result = db.session.execute(ins.values(rows).on_conflict_do_nothing(index_elements=["list_id", "contact_id"]))
    added = result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(ids)
    if single and added == 0:
        raise Conflict("The contact is already a member of this list.", code="duplicate_member",
                       param="contact_id")
    lst.updated_at = now
    return {"object": "list_members", "list_id": lst.id, "added": added, "already_members": len(ids) - added}


def remove_member(list_id: str, contact_id: str) -> None:
    """Take the contact off a static list; NotFound (param ``contact_id``) when it is not on it."""
    lst = get_list(list_id)
    _static(lst)
    tenant = require_tenant()
    result = db.session.execute(delete(_members).where(
        _members.c.organization_id == tenant.organization_id, _members.c.mode == tenant.mode,
        _members.c.list_id == lst.id, _members.c.contact_id == contact_id))
    if not result.rowcount:
        raise NotFound("This contact is not a member of the list.", param="contact_id")


def membership_clause(list_id: str, param: str = "id"):
    """A WHERE clause over ``contacts``: "is on this list".  A dynamic list's rules apply to the outer
    contacts directly (no self semi-join); a static list is a semi-join on list_members."""
    lst = get_list(list_id, param=param)
    if lst.list_type == "dynamic":
        clause = segment_clause(lst.segment_rules or {})
        _tune_for_event_counts(parse_rules(lst.segment_rules or {}))
        return clause
    return _contacts.c.id.in_(_audience(lst))


def members_query(list_id: str):
    """``select(Contact)`` of the list's members, for keyset paging with ``paginate``."""
    return select(Contact).where(membership_clause(list_id))


def lists_of_contact(contact_id: str) -> list[ContactList]:
    """The static lists the contact is on (dynamic ones are not stored per contact: see
    ``dynamic_lists_matching``)."""
    tenant = require_tenant()
    ids = select(_members.c.list_id).where(
        _members.c.organization_id == tenant.organization_id, _members.c.mode == tenant.mode,
        _members.c.contact_id == contact_id)
    return list(db.session.execute(select(ContactList).where(ContactList.id.in_(ids))
                                   .order_by(ContactList.name)).scalars())


def dynamic_lists_matching(contact_id: str, limit: int = 50) -> list[ContactList]:
    """The dynamic lists (up to ``limit``) whose segment matches this contact now: one statement, with
    event counts taken for this contact alone (correlated, ``ix_events_contact``)."""
    lists = list(db.session.execute(select(ContactList).where(ContactList.list_type == "dynamic")
                                    .order_by(ContactList.name).limit(limit)).scalars())
    if not lists:
        return []
    tenant = require_tenant()
    columns = [func.count().filter(compile_segment(parse_rules(lst.segment_rules or {}),
                                                   organization_id=tenant.organization_id,
                                                   mode=tenant.mode, correlated=True)).label(f"c{i}")
               for i, lst in enumerate(lists)]
    row = db.session.execute(select(*columns).select_from(_contacts).where(
        _contacts.c.organization_id == tenant.organization_id, _contacts.c.mode == tenant.mode,
        _contacts.c.id == contact_id)).one()
    return [lst for i, lst in enumerate(lists) if row[i]]


__all__ = ["audience_select", "get_list", "count_segment", "member_count", "attach_member_counts",
           "create_list", "update_list", "delete_list", "add_members", "remove_member", "members_query",
           "list_lists_query", "lists_of_contact", "dynamic_lists_matching"]
