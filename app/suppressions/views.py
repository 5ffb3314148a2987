from flask import Blueprint

bp = Blueprint("web_suppressions", __name__, url_prefix="/suppressions")
