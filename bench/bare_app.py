"""The bare baseline of bench/accept.py: a Flask app that only returns "ok", served by the same gunicorn
settings as Postline (``gunicorn bench.bare_app:app -w 2 --threads 4``)."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def ok():
    return "ok"
