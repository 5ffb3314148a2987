from flask.views import MethodView
from ..api.blueprint import Blueprint

from ..api.auth import require_scope
from ..api.pagination import list_schema, paginate
from . import service
from .models import Contact
from .schemas import ContactCreateSchema, ContactQueryArgs, ContactSchema, ContactUpdateSchema, DeletedSchema

def _deep_object(converter, field, **kwargs) -> dict:
    """OpenAPI ``style: deepObject`` for the query parameters that are objects (``attributes[KEY]=VALUE``)."""
    from .schemas import DeepObject
    return {"style": "deepObject", "explode": True} if isinstance(field, DeepObject) else {}


class _ContactsBlueprint(Blueprint):
    """Documents ``attributes[KEY]=VALUE`` as the deepObject it is (apispec has no field option for the
    parameter style), so generated clients and fuzzers send it that way."""

    def register_views_in_doc(self, api, app, spec, **kwargs):
        converter = api.ma_plugin.converter
        if _deep_object not in [getattr(f, "__func__", None) for f in converter.parameter_attribute_functions]:
            converter.add_parameter_attribute_function(_deep_object)
        return super().register_views_in_doc(api, app, spec, **kwargs)


blp = _ContactsBlueprint("contacts", __name__, url_prefix="/api/v1/contacts",
                         description="Contacts (your audience).")


@blp.route("")
class Contacts(MethodView):
    @require_scope("contacts.read")
    @blp.arguments(ContactQueryArgs, location="query")
    @blp.response(200, list_schema(ContactSchema))
    def get(self, args):
        """List contacts, newest first.  Filters (combine any): `email`, `tag`, `list_id`,
        `attributes[KEY]=VALUE`, `consent[email]`, `consent[sms]`, `created[gte]`, `created[lte]`, `risk`, and
        `q` (search over email, first and last name)."""
        return paginate(service.list_contacts_query(args), Contact, args, "/api/v1/contacts")

    @require_scope("contacts.write")
    @blp.arguments(ContactCreateSchema)
    @blp.response(201, ContactSchema)
    @blp.alt_response(200, schema=ContactSchema, description="An existing contact was updated.")
    def post(self, data):
        """Create a contact, or update the one with the same email (201 created, 200 updated)."""
        contact, created = service.upsert_contact(data)
        return contact, (201 if created else 200)


@blp.route('/<oid("con"):contact_id>')
class ContactById(MethodView):
    @require_scope("contacts.read")
    @blp.response(200, ContactSchema)
    def get(self, contact_id):
        """Retrieve a contact."""
        return service.get_contact(contact_id)

    @require_scope("contacts.write")
    @blp.arguments(ContactUpdateSchema)
    @blp.response(200, ContactSchema)
    def patch(self, data, contact_id):
        """Update some fields of a contact."""
        return service.update_contact(contact_id, data)

    @require_scope("contacts.write")
    @blp.response(200, DeletedSchema)
    def delete(self, contact_id):
        """Erase a contact (GDPR): the contact, its list memberships, its events and the content of the
        messages sent to it are gone for good (message ids and statuses stay, for your counts); its email and
        phone go on the suppression list with reason `erased`.  A `contact.deleted` event carrying only the
        id is still sent to webhooks."""
        return {"id": service.delete_contact(contact_id), "object": "contact", "deleted": True}
