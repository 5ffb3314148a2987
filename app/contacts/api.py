from flask.views import MethodView
from ..api.blueprint import Blueprint

from ..api.auth import require_scope
from ..api.pagination import list_schema, paginate
from . import service
from .models import Contact
from .schemas import ContactCreateSchema, ContactQueryArgs, ContactSchema, ContactUpdateSchema, DeletedSchema

blp = Blueprint("contacts", __name__, url_prefix="/api/v1/contacts", description="Contacts (your audience).")


@blp.route("")
class Contacts(MethodView):
    @require_scope("contacts.read")
    @blp.arguments(ContactQueryArgs, location="query")
    @blp.response(200, list_schema(ContactSchema))
    def get(self, args):
        """List contacts, newest first, filtered by `email` or `tag`."""
        stmt = service.list_contacts_query(email=args.get("email"), tag=args.get("tag"))
        return paginate(stmt, Contact, args, "/api/v1/contacts")

    @require_scope("contacts.write")
    @blp.arguments(ContactCreateSchema)
    @blp.response(201, ContactSchema)
    @blp.alt_response(200, schema=ContactSchema, description="An existing contact was updated.")
    def post(self, data):
        """Create a contact, or update the one with the same email (201 created, 200 updated)."""
        contact, created = service.upsert_contact(data)
        return contact, (201 if created else 200)


@blp.route("/<contact_id>")
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
        """Delete a contact."""
        return {"id": service.delete_contact(contact_id), "object": "contact", "deleted": True}
