"""Templates: create, read, update (with versions), delete, render.  Tenant scoping comes from the session
(app.tenancy); rendering rules live in ``render.py``.

Every version of a template, the current one included, is a ``TemplateVersion`` row; the ``Template`` row
carries the current content too, so reading or rendering the current version is one primary-key lookup.
"""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound, ValidationError
from ..extensions import db
from . import render
from .models import Template, TemplateVersion

CONTENT_FIELDS = ("subject", "html", "text", "body_json", "variables")
PLAIN_FIELDS = ("name", "channel", "is_active")


def _check_content(channel: str, subject, html, text) -> None:
    """The service's rules on top of the schema: what each channel needs, and that every part parses."""
    if channel == "sms":
        if not text:
            raise ValidationError("An SMS template needs 'text' (the message body).", param="text")
    elif not (html or text):
        raise ValidationError("An email template needs 'html' or 'text'.", param="html")
    render.compile_parts(subject, html, text)  # invalid_template naming the part


def _snapshot(template: Template) -> TemplateVersion:
    return TemplateVersion(template_id=template.id, version=template.version, subject=template.subject,
                           html=template.html, text=template.text, body_json=template.body_json,
                           variables=list(template.variables or []))


def _normalise_variables(variables: list) -> list:
    return [{"name": v["name"], "sample": v.get("sample"), "default": v.get("default"),
             "required": bool(v.get("required", False))} for v in variables]


def create_template(data: dict) -> Template:
    """Create a template at version 1 (and its first TemplateVersion).  ValidationError for content the
    channel cannot use or that does not parse (``invalid_template``)."""
    channel = data.get("channel", "email")
    _check_content(channel, data.get("subject"), data.get("html"), data.get("text"))
    template = Template(
        name=data["name"], channel=channel, subject=data.get("subject"), html=data.get("html"),
        text=data.get("text"), body_json=data.get("body_json"),
        variables=_normalise_variables(data.get("variables") or []),
        is_active=data.get("is_active", True), version=1, metadata_=data.get("metadata") or {})
    db.session.add(template)
    db.session.flush()
    db.session.add(_snapshot(template))
    db.session.flush()
    return template


def get_template(template_id: str, *, for_update: bool = False) -> Template:
    """The template (current version) of the tenant in scope; NotFound (param ``template_id``) otherwise."""
    if not isinstance(template_id, str) or not template_id:
        raise NotFound("No such template.", param="template_id")
    if for_update:
        template = db.session.execute(
            select(Template).where(Template.id == template_id).with_for_update()).scalar_one_or_none()
    else:
        template = db.session.get(Template, template_id)
    if template is None:
        raise NotFound("No such template.", param="template_id")
    return template


def list_templates_query(channel: str | None = None, is_active: bool | None = None):
    stmt = select(Template)
    if channel:
        stmt = stmt.where(Template.channel == channel)
    if is_active is not None:
        stmt = stmt.where(Template.is_active.is_(is_active))
    return stmt


def update_template(template_id: str, data: dict) -> Template:
    """Apply a full or partial update.  A change to subject, html, text, body_json or variables bumps
    ``version`` and stores the new TemplateVersion; name, channel, is_active and metadata do not (and a
    "change" to identical content is no change).  Conflict if another update took the same version."""
    template = get_template(template_id, for_update=True)
    if "variables" in data:
        data = {**data, "variables": _normalise_variables(data["variables"] or [])}
    new = {f: data[f] if f in data else getattr(template, f) for f in CONTENT_FIELDS}
    channel = data.get("channel", template.channel)
    content_changed = any(new[f] != getattr(template, f) for f in CONTENT_FIELDS)
    if content_changed or channel != template.channel:
        _check_content(channel, new["subject"], new["html"], new["text"])
    for f in PLAIN_FIELDS:
        if f in data and data[f] is not None:
            setattr(template, f, data[f])
    if "metadata" in data:
        template.metadata_ = data["metadata"]
    if content_changed:
        for f in CONTENT_FIELDS:
            setattr(template, f, new[f])
        template.version = template.version + 1
        try:
            with db.session.begin_nested():
                db.session.add(_snapshot(template))
                db.session.flush()
        except IntegrityError:
            raise Conflict("The template was changed by another request at the same time; retry.",
                           param="template_id") from None
    else:
        db.session.flush()
    return template


def delete_template(template_id: str) -> str:
    template = get_template(template_id)
    db.session.execute(delete(TemplateVersion).where(TemplateVersion.template_id == template.id))
    db.session.execute(delete(Template).where(Template.id == template.id))
    return template.id


def versions_page(template_id: str, args: dict, url: str) -> dict:
    """A template's versions, newest first, keyset-paged on the version number (``starting_after`` /
    ``ending_before`` are version object ids)."""
    template = get_template(template_id)
    limit = args.get("limit", 20)
    after, before = args.get("starting_after"), args.get("ending_before")
    stmt = select(TemplateVersion).where(TemplateVersion.template_id == template.id)
    cursor_id = after or before
    if cursor_id:
        number = db.session.execute(select(TemplateVersion.version).where(
            TemplateVersion.template_id == template.id, TemplateVersion.id == cursor_id)).scalar_one_or_none()
        if number is None:
            param = "starting_after" if after else "ending_before"
            raise ValidationError(f"No such object for cursor '{param}': {cursor_id!r}.", param=param)
        stmt = stmt.where(TemplateVersion.version < number if after else TemplateVersion.version > number)
    order = TemplateVersion.version.asc() if before else TemplateVersion.version.desc()
    rows = db.session.execute(stmt.order_by(order).limit(limit + 1)).scalars().all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if before:
        rows = list(reversed(rows))
    return {"object": "list", "url": url, "has_more": has_more, "data": rows}


def _compiled_version(template: Template, version: int | None, param: str):
    """``(CompiledTemplate, version number)``; parsed once per stored version (render's LRU).  The current
    version is keyed by its ``updated_at`` too, so a rolled-back edit can never leave a stale entry."""
    if version is None or version == template.version:
        key = ("current", template.id, template.version, template.updated_at)
        return render.compile_parts(template.subject, template.html, template.text, template.variables,
                                    cache_key=key), template.version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise NotFound(f"Template {template.id} has no version {version!r}.", param=param)
    row = db.session.execute(select(TemplateVersion).where(
        TemplateVersion.template_id == template.id, TemplateVersion.version == version)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Template {template.id} has no version {version}.", param=param)
    return render.compile_parts(row.subject, row.html, row.text, row.variables,
                                cache_key=("version", row.id)), version


def _check_variables(variables) -> dict:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise ValidationError("'variables' must be an object.", param="variables")
    return variables


def render_template(template_id: str, variables: dict | None = None, *, version: int | None = None,
                    contact=None, unsubscribe_url: str | None = None) -> dict:
    """Render without sending (``POST /templates/{id}/render``): supplied variables, then declared defaults
    (samples are for dashboard previews only).  Inactive templates render too.  Raises NotFound (param
    ``version`` for an unknown version) and ValidationError ``missing_variable``."""
    template = get_template(template_id)
    compiled, number = _compiled_version(template, version, "version")
    ctx = render.build_context(_check_variables(variables), declared=compiled.variables, contact=contact,
                               unsubscribe_url=unsubscribe_url)
    out = render.render_compiled(compiled, ctx)
    if template.channel == "sms":
        out["subject"] = out["html"] = None
    return {"template_id": template.id, "version": number, **out}


def render_for_send(template_id: str, variables: dict, *, version: int | None = None,
                    contact: dict | None = None, unsubscribe_url: str | None = None,
                    channel: str = "email") -> dict:
    """Render a template for one message: ``{"subject", "html", "text", "template_id", "version"}`` (an SMS
    template gives ``text`` only).  ``contact`` (a dict or a Contact) provides ``contact.*`` and top-level
    ``first_name``/``last_name``/``email``/``phone_number`` when no variable has those names.

    Raises NotFound for an unknown template (param ``template_id``) or version (param ``template_version``);
    ValidationError ``invalid_template`` (param ``template_id``) when the template is inactive or of another
    channel, ``missing_variable`` (param ``variables.<name>``) for a required variable with no value and no
    default, and ``invalid_template`` (param ``subject``) when a variable puts a line break in the subject."""
    template = get_template(template_id)
    if not template.is_active:
        raise ValidationError(f"Template {template.id} is inactive.", code="invalid_template", param="template_id")
    if template.channel != channel:
        raise ValidationError(f"Template {template.id} is an {template.channel} template, not {channel}.",
                              code="invalid_template", param="template_id")
    compiled, number = _compiled_version(template, version, "template_version")
    ctx = render.build_context(_check_variables(variables), declared=compiled.variables, contact=contact,
                               unsubscribe_url=unsubscribe_url)
    out = render.render_compiled(compiled, ctx)
    if channel == "sms":
        out["subject"] = out["html"] = None
    return {**out, "template_id": template.id, "version": number}


def render_content(subject: str | None, html: str | None, text: str | None, context: dict) -> dict:
    """Render ad-hoc mustache content (``{subject, html, text}``; html escaped, subject one line).
    ``context`` is used as given: build it with ``build_context`` to get contact fields and
    ``unsubscribe_url``.  ValidationError ``invalid_template`` naming the part that does not parse."""
    return render.render_strings(subject, html, text, context or {})


def build_context(variables: dict | None = None, *, contact=None, unsubscribe_url: str | None = None,
                  declared: list | None = None) -> dict:
    """The rendering context for ``render_content``: variables, declared defaults, contact fields and
    ``unsubscribe_url`` (see ``render.build_context``)."""
    return render.build_context(_check_variables(variables), declared=declared, contact=contact,
                                unsubscribe_url=unsubscribe_url)


def preview(data: dict, contact=None, unsubscribe_url: str | None = None) -> dict:
    """Dashboard preview of unsaved content: declared samples, then defaults; required variables without
    either are reported as ``missing_variable``.  Also returns the names the content uses and which of them
    are neither declared nor built in (probably typos)."""
    channel = data.get("channel", "email")
    compiled = render.compile_parts(data.get("subject"), data.get("html"), data.get("text"))
    declared = _normalise_variables(data.get("variables") or [])
    ctx = render.build_context({}, declared=declared, contact=contact, unsubscribe_url=unsubscribe_url,
                               use_samples=True)
    out = render.render_compiled(compiled, ctx)
    if channel == "sms":
        out["subject"] = out["html"] = None
    known = {v["name"] for v in declared} | render.BUILTIN_NAMES
    out["used"] = sorted(compiled.names)
    out["undeclared"] = sorted(compiled.top - known)
    return out
