"""Rendering broadcast messages per recipient, at delivery time.

A broadcast's message rows carry no content.  For each batch the delivery worker claims, ``load_batch``
reads the batch's broadcasts, their recipients' contacts (and inline ``data``) and the frozen template
versions in one query each; ``BatchRenderer.render`` then parses each broadcast's content once and renders
it with the contact's fields (``first_name``, ``last_name``, ``email``, ``contact.attributes`` …), the
recipient's own ``data`` and ``unsubscribe_url``.
"""
from __future__ import annotations

from sqlalchemy import select, tuple_

from ..contacts.models import Contact
from ..extensions import db
from ..templates import render
from ..tenancy import unscoped
from .models import Broadcast, BroadcastRecipient

# What a proof shows for contact fields when the proof's address is not a contact.
SAMPLE_CONTACT = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "attributes": {}}


def _compile(b: Broadcast, version_row=None) -> render.CompiledTemplate:
    if version_row is None:
        return render.compile_parts(b.subject, b.html, b.text)
    return render.compile_parts(b.subject or version_row.subject, version_row.html, version_row.text,
                                version_row.variables)


class BatchRenderer:
    def __init__(self, broadcasts: dict, contacts: dict, data: dict, versions: dict):
        self.broadcasts, self.contacts, self.data, self.versions = broadcasts, contacts, data, versions
        self._compiled: dict[str, render.CompiledTemplate] = {}

    def compiled(self, b: Broadcast) -> render.CompiledTemplate:
        hit = self._compiled.get(b.id)
        if hit is None:
            hit = self._compiled[b.id] = _compile(b, self.versions.get((b.template_id, b.template_version))
                                                  if b.template_id else None)
        return hit

    def render(self, message, recipient) -> tuple[str | None, str | None, str | None]:
        from ..tracking.tokens import unsubscribe_url

        b = self.broadcasts.get(message.broadcast_id)
        if b is None:
            raise LookupError(f"broadcast {message.broadcast_id} of {message.id} is gone")
        compiled = self.compiled(b)
        context = render.build_context(
            self.data.get((b.id, message.contact_id)) or {}, declared=compiled.variables,
            contact=self.contacts.get(message.contact_id),
            unsubscribe_url=unsubscribe_url(message.organization_id, message.mode, message.id, recipient.address))
        out = render.render_compiled(compiled, context)
        return out["subject"], out["html"], out["text"]


def load_batch(messages) -> BatchRenderer | None:
    """Everything rendering the batch's broadcast messages needs, in one query per table."""
    mine = [m for m in messages if m.broadcast_id and m.html is None and m.text is None]
    if not mine:
        return None
    from ..templates.models import TemplateVersion

    broadcast_ids = {m.broadcast_id for m in mine}
    contact_ids = sorted({m.contact_id for m in mine if m.contact_id})
    with unscoped():
        broadcasts = {b.id: b for b in db.session.execute(
            select(Broadcast).where(Broadcast.id.in_(broadcast_ids))).scalars()}
        contacts = {c.id: c for c in db.session.execute(
            select(Contact).where(Contact.id.in_(contact_ids))).scalars()} if contact_ids else {}
        inline = [bid for bid, b in broadcasts.items() if b.inline_recipients]
        data = {}
        if inline and contact_ids:
            data = {(r.broadcast_id, r.contact_id): r.data for r in db.session.execute(
                select(BroadcastRecipient).where(BroadcastRecipient.broadcast_id.in_(inline),
                                                 BroadcastRecipient.contact_id.in_(contact_ids))).scalars()}
        keys = {(b.template_id, b.template_version) for b in broadcasts.values() if b.template_id}
        versions = {}
        if keys:
            versions = {(v.template_id, v.version): v for v in db.session.execute(
                select(TemplateVersion).where(tuple_(TemplateVersion.template_id, TemplateVersion.version)
                                              .in_(list(keys)))).scalars()}
    return BatchRenderer(broadcasts, contacts, data, versions)


def render_proof(b: Broadcast, contact=None) -> dict:
    """The broadcast as a proof recipient sees it: declared samples, then defaults; the recipient's own
    contact fields when they are a contact, else a sample contact.  Template broadcasts render the version
    they would send (the frozen one, else the current one)."""
    from ..templates.models import TemplateVersion
    from ..templates.service import get_template

    row = None
    if b.template_id:
        template = get_template(b.template_id)
        version = b.template_version or template.version
        row = db.session.execute(select(TemplateVersion).where(
            TemplateVersion.template_id == template.id, TemplateVersion.version == version)).scalar_one_or_none()
    compiled = _compile(b, row)
    context = render.build_context({}, declared=compiled.variables, contact=contact or SAMPLE_CONTACT,
                                   unsubscribe_url="#unsubscribe-link-in-the-real-message", use_samples=True)
    return render.render_compiled(compiled, context)
