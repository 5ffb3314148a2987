"""The Blueprint every API package uses: flask-smorest's, with unknown query parameters refused too."""
from __future__ import annotations

import flask_smorest
from flask_smorest.arguments import ArgumentsMixin
from marshmallow import RAISE


class StrictParser(type(ArgumentsMixin.ARGUMENTS_PARSER)):
    """Unknown fields are a 400 in every location we read (body and query), catching typos such as
    ``?emial=``; headers and cookies stay permissive."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **type(ArgumentsMixin.ARGUMENTS_PARSER).DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE, "querystring": RAISE, "json": RAISE, "form": RAISE, "files": RAISE,
    }


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()
