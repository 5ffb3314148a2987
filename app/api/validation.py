"""Turn marshmallow/webargs messages into the contract's 400 with the offending ``param``."""
from __future__ import annotations

from marshmallow import Schema, fields


def _first_error(messages, path=()):
    """Depth-first: the first leaf message and the path to it."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            return _first_error(value, path + (key,))
    if isinstance(messages, list):
        if messages and all(isinstance(m, str) for m in messages):
            return path, messages[0]
        for item in messages:
            return _first_error(item, path)
    return path, str(messages)


def _field_at(schema: Schema | None, path: tuple):
    field = None
    current = schema
    for i, part in enumerate(path):
        if _is_index(part):
            continue
        if current is None or not hasattr(current, "fields"):
            return None
        field = current.fields.get(part)
        if field is None:
            return None
        inner = field
        while isinstance(inner, fields.List):
            inner = inner.inner
        current = inner.schema if isinstance(inner, fields.Nested) else None
        if isinstance(field, fields.List) and i + 1 < len(path) and _is_index(path[i + 1]):
            # An item's error takes the item field's code (`to[2]` → invalid_email); an error about the list
            # itself (its length) stays a plain invalid_request.
            field = inner
    return field


def _is_index(part) -> bool:
    return isinstance(part, int) or (isinstance(part, str) and part.isdigit())


def _param(path: tuple) -> str | None:
    out = ""
    for part in path:
        if part == "_schema":
            continue
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or None


def describe(messages, schema: Schema | None = None) -> tuple[str | None, str, str]:
    """``(param, code, message)`` for webargs' ``{location: {field: [msg]}}`` messages."""
    location_msgs = messages
    if isinstance(messages, dict) and len(messages) == 1:
        (location, inner), = messages.items()
        if location in {"json", "query", "querystring", "form", "files", "headers", "view_args"}:
            location_msgs = inner
    path, text = _first_error(location_msgs)
    if len(path) >= 2 and path[-1] in ("key", "value") and isinstance(_field_at(schema, path[:-2]), fields.Dict):
        path = path[:-1]  # marshmallow nests a Dict's errors as {key: {"value": [...]}}: name the key
    param = _param(path)
    field = _field_at(schema, path)
    code = getattr(field, "error_code", None) or "invalid_request"
    if text == "Missing data for required field.":
        code = "invalid_request"
    if text == "Unknown field.":
        message = f"Unknown field '{param}'."
    elif text == "Missing data for required field.":
        message = f"'{param}' is required."
    elif param:
        message = f"'{param}' {text[0].lower() + text[1:] if text[:1].isupper() and not text[:2].isupper() else text}"
    else:
        message = text
    return param, code, message
