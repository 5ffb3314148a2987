from flask import Blueprint

bp = Blueprint("web_messages", __name__, url_prefix="/messages")
