from flask.views import MethodView

from ..api.auth import require_scope
from ..api.blueprint import Blueprint
from ..api.pagination import PaginationArgs, list_schema, paginate
from ..contacts.models import Contact
from ..contacts.schemas import ContactSchema
from . import service
from .models import ContactList
from .schemas import (AddMembersResultSchema, AddMembersSchema, DeletedListSchema, ListCreateSchema, ListQueryArgs,
                      ListSchema, ListUpdateSchema, PreviewCountResultSchema, PreviewCountSchema, RemovedMemberSchema)

blp = Blueprint("lists", __name__, url_prefix="/api/v1/lists",
                description="Lists: static (contacts you add) or dynamic (the contacts `segment_rules` match).")


@blp.route("")
class Lists(MethodView):
    @require_scope("lists.read")
    @blp.arguments(ListQueryArgs, location="query")
    @blp.response(200, list_schema(ListSchema))
    def get(self, args):
        """List lists, newest first, each with its `member_count`.  Filter: `list_type`."""
        page = paginate(service.list_lists_query(args.get("list_type")), ContactList, args, "/api/v1/lists")
        service.attach_member_counts(page["data"])
        return page

    @require_scope("lists.write")
    @blp.arguments(ListCreateSchema)
    @blp.response(201, ListSchema)
    def post(self, data):
        """Create a list.  A `dynamic` list needs `segment_rules`; a `static` one refuses them (400)."""
        return service.create_list(data)


@blp.route("/preview-count")
class ListPreviewCount(MethodView):
    @require_scope("lists.read")
    @blp.arguments(PreviewCountSchema)
    @blp.response(200, PreviewCountResultSchema)
    def post(self, data):
        """Count the contacts `segment_rules` match now, without saving anything (the rule builder's live
        count).  Invalid rules are a 400 naming the offending param."""
        return {"member_count": service.count_segment(data["segment_rules"])}


@blp.route('/<oid("list"):list_id>')
class ListById(MethodView):
    @require_scope("lists.read")
    @blp.response(200, ListSchema)
    def get(self, list_id):
        """Retrieve a list with its `member_count`."""
        return service.get_list_with_count(list_id)

    @require_scope("lists.write")
    @blp.arguments(ListUpdateSchema)
    @blp.response(200, ListSchema)
    def patch(self, data, list_id):
        """Update the name, description, metadata, or a dynamic list's `segment_rules`."""
        return service.update_list(list_id, data)

    @require_scope("lists.write")
    @blp.response(200, DeletedListSchema)
    def delete(self, list_id):
        """Delete a list and its memberships; the contacts stay."""
        return {"id": service.delete_list(list_id), "object": "list", "deleted": True}


@blp.route('/<oid("list"):list_id>/members')
class ListMembers(MethodView):
    @require_scope("lists.read")
    @blp.arguments(PaginationArgs, location="query")
    @blp.response(200, list_schema(ContactSchema, name="ListMemberPageSchema"))
    def get(self, args, list_id):
        """The list's contacts, newest first (a dynamic list's: those its rules match now)."""
        return paginate(service.members_query(list_id), Contact, args, f"/api/v1/lists/{list_id}/members")

    @require_scope("lists.write")
    @blp.arguments(AddMembersSchema)
    @blp.response(201, AddMembersResultSchema)
    def post(self, data, list_id):
        """Add `contact_id` (already a member → 409 `duplicate_member`) or up to 1,000 `contact_ids` (the
        answer counts `added` and `already_members`).  Unknown contact → 404; a dynamic list → 422
        `dynamic_list`."""
        if "contact_id" in data:
            return service.add_members(list_id, [data["contact_id"]], single=True)
        return service.add_members(list_id, data["contact_ids"])


@blp.route('/<oid("list"):list_id>/members/<oid("con"):contact_id>')
class ListMemberById(MethodView):
    @require_scope("lists.write")
    @blp.response(200, RemovedMemberSchema)
    def delete(self, list_id, contact_id):
        """Take a contact off a static list (the contact stays)."""
        service.remove_member(list_id, contact_id)
        return {"list_id": list_id, "contact_id": contact_id, "deleted": True}
