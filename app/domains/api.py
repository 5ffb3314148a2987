from flask.views import MethodView  # noqa: F401

from ..api.blueprint import Blueprint

blp = Blueprint("domains", __name__, url_prefix="/api/v1/domains", description="Sending domains: DKIM keys, DNS records, verification.")
