from flask import Blueprint

bp = Blueprint("web_templates", __name__, url_prefix="/templates")
