from flask.views import MethodView  # noqa: F401

from ..api.blueprint import Blueprint

blp = Blueprint("messages", __name__, url_prefix="/api/v1/messages", description="Messages: send email, read its delivery.")
