from flask import g
from flask.views import MethodView
from ..api.blueprint import Blueprint

from ..api.auth import require_scope
from ..api.pagination import PaginationArgs, list_schema, paginate
from . import service
from .models import ApiKey
from .schemas import ApiKeyCreateSchema, ApiKeySchema, ApiKeyUpdateSchema, ApiKeyWithSecretSchema

blp = Blueprint("api_keys", __name__, url_prefix="/api/v1/api-keys", description="API keys (secret shown once).")


def _with_secret(key, secret):
    key.secret = secret  # transient: never stored, serialised once by ApiKeyWithSecretSchema
    return key


@blp.route("")
class ApiKeys(MethodView):
    @require_scope("api_keys.read")
    @blp.arguments(PaginationArgs, location="query")
    @blp.response(200, list_schema(ApiKeySchema))
    def get(self, args):
        """List the organization's active API keys, newest first."""
        return paginate(service.list_keys_query(), ApiKey, args, "/api/v1/api-keys")

    @require_scope("api_keys.write")
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyWithSecretSchema)
    def post(self, data):
        """Create a key.  The `secret` is in this response only; store it in a secret manager."""
        key, secret = service.create_key(g.tenant.organization_id, name=data["name"],
                                         test_mode=data["test_mode"], scopes=data.get("scopes"),
                                         preset=data.get("scope"))
        return _with_secret(key, secret)


@blp.route("/<key_id>")
class ApiKeyById(MethodView):
    @require_scope("api_keys.read")
    @blp.response(200, ApiKeySchema)
    def get(self, key_id):
        """Retrieve a key (never its secret)."""
        return service.get_key(key_id)

    @require_scope("api_keys.write")
    @blp.arguments(ApiKeyUpdateSchema)
    @blp.response(200, ApiKeySchema)
    def patch(self, data, key_id):
        """Rename, re-scope, disable or enable a key."""
        return service.update_key(key_id, name=data.get("name"), scopes=data.get("scopes"),
                                  preset=data.get("scope"), is_enabled=data.get("is_enabled"))

    @require_scope("api_keys.write")
    @blp.response(200, ApiKeySchema)
    def delete(self, key_id):
        """Revoke a key: it answers 401 from the next request on."""
        return service.revoke_key(key_id)


@blp.route("/<key_id>/rotate")
class ApiKeyRotate(MethodView):
    @require_scope("api_keys.write")
    @blp.response(200, ApiKeyWithSecretSchema)
    def post(self, key_id):
        """Replace the secret; the old one answers 401 at once.  The new `secret` is shown once."""
        key, secret = service.rotate_key(key_id)
        return _with_secret(key, secret)
