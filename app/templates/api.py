from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import list_schema, paginate
from ..contacts.service import get_contact
from ..errors import NotFound
from . import service
from .models import Template
from .schemas import (RenderedSchema, RenderRequestSchema, TemplateCreateSchema, TemplateDeletedSchema, TemplateQueryArgs,
                      TemplateSchema, TemplateUpdateSchema, TemplateVersionSchema, VersionQueryArgs)

blp = Blueprint("templates", __name__, url_prefix="/api/v1/templates", description="Templates: reusable email and SMS content (mustache).")


@blp.route("")
class Templates(MethodView):
    @require_scope("templates.read")
    @blp.arguments(TemplateQueryArgs, location="query")
    @blp.response(200, list_schema(TemplateSchema))
    def get(self, args):
        """List templates, newest first, filtered by `channel` or `is_active`."""
        stmt = service.list_templates_query(channel=args.get("channel"), is_active=args.get("is_active"))
        return paginate(stmt, Template, args, "/api/v1/templates")

    @require_scope("templates.write")
    @blp.arguments(TemplateCreateSchema)
    @blp.response(201, TemplateSchema)
    def post(self, data):
        """Create a template (version 1).

        Mustache syntax: `{{name}}` (HTML-escaped in `html`), `{{{name}}}` (raw), `{{#list}}…{{/list}}`,
        `{{^empty}}…{{/empty}}`, `{{contact.first_name}}`, `{{unsubscribe_url}}`.  Partials are not
        supported.  A template that does not parse is refused with `invalid_template`."""
        return service.create_template(data)


@blp.route("/<template_id>")
class TemplateById(MethodView):
    @require_scope("templates.read")
    @blp.response(200, TemplateSchema)
    def get(self, template_id):
        """Retrieve a template (its current version)."""
        return service.get_template(template_id)

    @require_scope("templates.write")
    @blp.arguments(TemplateUpdateSchema)
    @blp.response(200, TemplateSchema)
    def put(self, data, template_id):
        """Update a template: any subset of the fields.  Changing `subject`, `html`, `text`, `body_json` or
        `variables` creates a new version; `name`, `channel`, `is_active` and `metadata` do not."""
        return service.update_template(template_id, data)

    @require_scope("templates.write")
    @blp.response(200, TemplateDeletedSchema)
    def delete(self, template_id):
        """Delete a template and all its versions."""
        return {"id": service.delete_template(template_id), "object": "template", "deleted": True}


@blp.route("/<template_id>/versions")
class TemplateVersions(MethodView):
    @require_scope("templates.read")
    @blp.arguments(VersionQueryArgs, location="query")
    @blp.response(200, list_schema(TemplateVersionSchema))
    def get(self, args, template_id):
        """List a template's versions, newest first."""
        return service.versions_page(template_id, args, f"/api/v1/templates/{template_id}/versions")


@blp.route("/<template_id>/render")
class TemplateRender(MethodView):
    @require_scope("templates.read")
    @blp.arguments(RenderRequestSchema, required=False)
    @blp.response(200, RenderedSchema)
    def post(self, data, template_id):
        """Render a template without sending it: `{subject, html, text}`.

        Uses the supplied `variables`, then each declared variable's `default` (`sample` values are for
        previews in the dashboard only).  A required variable with neither → 400 `missing_variable` with
        `param` `variables.<name>`.  `contact_id` adds the contact's fields (`contact.*`, and `first_name`,
        `last_name`, `email`, `phone_number` when no variable has those names)."""
        contact = None
        if data.get("contact_id"):
            try:
                contact = get_contact(data["contact_id"])
            except NotFound:
                raise NotFound("No such contact.", param="contact_id") from None
        return service.render_template(template_id, data.get("variables"), version=data.get("version"),
                                       contact=contact)
