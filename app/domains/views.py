from flask import Blueprint

bp = Blueprint("web_domains", __name__, url_prefix="/domains")
