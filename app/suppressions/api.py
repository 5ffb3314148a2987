from flask.views import MethodView  # noqa: F401

from ..api.blueprint import Blueprint

blp = Blueprint("suppressions", __name__, url_prefix="/api/v1/suppressions", description="Suppressions: recipients that are never contacted.")
