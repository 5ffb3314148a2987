"""Domain pages: list + add, detail with the records to copy, verify (htmx swaps the records with their
status), delete.  Input goes through the API's DomainCreateSchema and the same service as the API."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import StringField
from wtforms.validators import Length

from ..errors import Conflict, ValidationError
from ..web.access import org_required, require
from ..web.forms import PostForm, apply_domain_error, apply_schema_errors
from ..web.htmx import render, wants_fragment
from ..web.pagination import Page, keyset_page
from . import service
from .models import Domain
from .schemas import DomainCreateSchema

bp = Blueprint("web_domains", __name__, url_prefix="/domains")

STATUS_BADGES = {"verified": "ok", "pending": "warn", "failed": "error"}
PURPOSE_LABELS = {"dkim": "DKIM", "spf": "SPF", "return_path": "Return path", "dmarc": "DMARC",
                  "tracking": "Tracking"}


class DomainForm(FlaskForm):
    domain = StringField("Domain", validators=[Length(max=300)], render_kw={"placeholder": "mail.acme.com"},
                         description="The domain or subdomain you send from, e.g. mail.acme.com.")


def _context(**extra) -> dict:
    return {"status_badges": STATUS_BADGES, "purpose_labels": PURPOSE_LABELS,
            "fully_verified": service.fully_verified, **extra}


def _list(form: DomainForm | None = None, status: int = 200):
    error = None
    try:
        page = keyset_page(service.list_domains_query(), Domain)
    except ValidationError as err:
        error, page = err.message, Page(items=[])
    return render("domains/page.html", "domains/_table.html", status=status,
                  **_context(page=page, error=error, form=form or DomainForm(formdata=None)))


@bp.get("")
@org_required
def index():
    return _list()


@bp.post("")
@org_required
def create():
    require("write")
    form = DomainForm()
    if form.validate_on_submit():
        try:
            data = DomainCreateSchema().load({"domain": (form.domain.data or "").strip()})
            domain = service.create_domain(data["domain"])
        except SchemaError as err:
            apply_schema_errors(form, err.messages)
        except (ValidationError, Conflict) as err:
            apply_domain_error(form, err)
        else:
            flash(f"Domain {domain.domain} added. Publish its DNS records, then verify.", "success")
            return redirect(url_for(".detail", domain_id=domain.id), 303)
    return _list(form, status=422)


@bp.get("/<domain_id>")
@org_required
def detail(domain_id):
    domain = service.get_domain(domain_id)
    return render("domains/detail.html", **_context(domain=domain, form=PostForm()))


@bp.post("/<domain_id>/verify")
@org_required
def verify(domain_id):
    require("write")
    form = PostForm()
    domain = service.get_domain(domain_id)
    if not form.validate_on_submit():
        raise ValidationError("The form expired; reload the page and try again.")
    domain = service.verify_domain(domain.id)
    if wants_fragment():
        return render("domains/detail.html", "domains/_records.html", **_context(domain=domain, form=form))
    verb = {"verified": "is verified", "failed": "has records that need fixing",
            "pending": "is not verified yet"}[domain.status]
    flash(f"Checked DNS: {domain.domain} {verb}.", "success" if domain.status == "verified" else "info")
    return redirect(url_for(".detail", domain_id=domain.id), 303)


@bp.route("/<domain_id>/delete", methods=["GET", "POST"])
@org_required
def delete(domain_id):
    require("write")
    domain = service.get_domain(domain_id)
    form = PostForm()
    if form.validate_on_submit():
        service.delete_domain(domain.id)
        flash(f"Domain {domain.domain} was deleted. Live sends from it are refused from now on.", "success")
        return redirect(url_for(".index"), 303)
    return render("domains/confirm.html", domain=domain, form=form)
