from flask.views import MethodView  # noqa: F401

from ..api.blueprint import Blueprint

blp = Blueprint("templates", __name__, url_prefix="/api/v1/templates", description="Templates: reusable email and SMS content (mustache).")
