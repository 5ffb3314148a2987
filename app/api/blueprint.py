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

    def arguments(self, schema, **kwargs):
        """As flask-smorest's, with the schema instantiated once here: given a class, webargs builds a new
        instance (deep-copying every declared field) on each request.  Our schemas keep no state on the
        instance, so one is shared by every request."""
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, **kwargs)
