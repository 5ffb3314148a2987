"""A Postman Collection v2.1 generated from the OpenAPI document (seed 001's "Export to Postman").

One folder per tag, one request per operation, in the document's order.  The collection authenticates
with ``Authorization: Bearer {{apiKey}}`` against ``{{baseUrl}}``; path parameters become Postman path
variables (``:contact_id``), query parameters and optional headers (``Idempotency-Key``, ``Version``) are
listed disabled, and JSON bodies carry an example built from the request schema.
"""
from __future__ import annotations

import json
import re

SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")
MAX_DEPTH = 6

# Example values for string formats, and for a few well-known property names.
_FORMAT_EXAMPLES = {"email": "ava@example.com", "date-time": "2026-06-12T09:24:11Z", "date": "2026-06-12",
                    "uri": "https://example.com/", "url": "https://example.com/", "uuid":
                    "00000000-0000-4000-8000-000000000000"}
_NAME_EXAMPLES = {"name": "Example", "first_name": "Ava", "last_name": "Lovelace", "timezone": "Europe/Paris",
                  "locale": "en-GB", "subject": "Hello", "url": "https://example.com/"}


def _resolve(obj: dict, spec: dict, seen: tuple = ()) -> tuple[dict, tuple]:
    """Follow local ``$ref``s (``#/components/...``); returns the target and the refs followed."""
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        if ref in seen or not ref.startswith("#/"):
            return {}, seen
        seen = seen + (ref,)
        target = spec
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        obj = target
    return obj, seen


def example_for(schema: dict, spec: dict, name: str | None = None, depth: int = 0, seen: tuple = ()):
    """A plausible example value for ``schema`` (an OpenAPI 3.0 schema object)."""
    schema, seen = _resolve(schema or {}, spec, seen)
    if depth > MAX_DEPTH:
        return None
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("oneOf", "anyOf", "allOf"):
        if schema.get(key):
            return example_for(schema[key][0], spec, name, depth + 1, seen)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        # The top level shows every writable field (a template to edit); nested objects their required ones,
        # or all when none is required.
        keep = [k for k, v in props.items()
                if not _resolve(v, spec)[0].get("readOnly")
                and (depth == 0 or not required or k in required)]
        return {k: example_for(props[k], spec, k, depth + 1, seen) for k in keep}
    if kind == "array":
        item = example_for(schema.get("items", {}), spec, name, depth + 1, seen)
        return [] if item is None else [item]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return schema.get("minimum", 1.0)
    if kind == "boolean":
        return False
    if kind == "string" or kind is None:
        if schema.get("format") in _FORMAT_EXAMPLES:
            return _FORMAT_EXAMPLES[schema["format"]]
        if name in _NAME_EXAMPLES:
            return _NAME_EXAMPLES[name]
        return name or "string"
    return None


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _parameters(op: dict, path_item: dict, spec: dict) -> list[dict]:
    """The operation's parameters with the path item's, resolved; the operation's win on (name, in)."""
    out: dict[tuple, dict] = {}
    for raw in list(path_item.get("parameters", [])) + list(op.get("parameters", [])):
        param, _ = _resolve(raw, spec)
        if param.get("name") and param.get("in"):
            out[(param["name"], param["in"])] = param
    return list(out.values())


def _auth(security: list | None, schemes: dict) -> dict | None:
    """Postman auth for an OpenAPI security requirement list (``None``: inherit from the collection)."""
    if security is None:
        return None
    if security == [] or security == [{}]:
        return {"type": "noauth"}
    for requirement in security:
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer":
                return {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]}
            if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                return {"type": "apikey", "apikey": [
                    {"key": "key", "value": scheme["name"], "type": "string"},
                    {"key": "value", "value": "{{apiKey}}", "type": "string"},
                    {"key": "in", "value": "header", "type": "string"}]}
    return None


def _request_item(path: str, method: str, op: dict, path_item: dict, spec: dict) -> dict:
    params = _parameters(op, path_item, spec)
    descriptions = {p["name"]: p.get("description", "") for p in params if p["in"] == "path"}
    segments = [re.sub(r"^\{(.+)\}$", r":\1", s) for s in path.strip("/").split("/")]
    variables = [{"key": s[1:], "value": "", "description": descriptions.get(s[1:]) or f"The `{s[1:]}`."}
                 for s in segments if s.startswith(":")]
    query = []
    headers = []
    for param in params:
        schema, _ = _resolve(param.get("schema", {}), spec)
        value = param.get("example", example_for(schema, spec, param["name"]))
        entry = {"key": param["name"], "value": _text(value), "description": param.get("description", "")}
        if param["in"] == "query":
            entry["disabled"] = not param.get("required", False)
            query.append(entry)
        elif param["in"] == "header":
            if param["name"].lower() == "idempotency-key":
                entry["value"] = "{{$guid}}"
            entry["disabled"] = not param.get("required", False)
            headers.append(entry)

    url = {"raw": "{{baseUrl}}/" + "/".join(segments), "host": ["{{baseUrl}}"], "path": segments}
    if query:
        url["query"] = query
    if variables:
        url["variable"] = variables

    request: dict = {"method": method.upper(), "header": headers, "url": url}
    content = (op.get("requestBody") or {}).get("content", {})
    if "application/json" in content:
        body = example_for(content["application/json"].get("schema", {}), spec)
        request["header"] = [{"key": "Content-Type", "value": "application/json"}] + headers
        request["body"] = {"mode": "raw", "raw": json.dumps(body, indent=2, ensure_ascii=False),
                           "options": {"raw": {"language": "json"}}}
    elif "multipart/form-data" in content:
        schema, _ = _resolve(content["multipart/form-data"].get("schema", {}), spec)
        request["body"] = {"mode": "formdata", "formdata": [
            {"key": k, "type": "file", "src": None} if _resolve(v, spec)[0].get("format") == "binary"
            else {"key": k, "type": "text", "value": _text(example_for(v, spec, k))}
            for k, v in schema.get("properties", {}).items()]}

    description = "\n\n".join(x for x in (op.get("summary"), op.get("description")) if x)
    if description:
        request["description"] = description
    auth = _auth(op.get("security"), spec.get("components", {}).get("securitySchemes", {}))
    if auth is not None:
        request["auth"] = auth

    item = {"name": op.get("summary") or f"{method.upper()} {path}", "request": request}
    if op.get("operationId"):
        item["id"] = op["operationId"]
    return item


def collection_from_spec(spec: dict, base_url: str) -> dict:
    """The Postman Collection v2.1 for an OpenAPI 3 document (a dict, as ``APISpec.to_dict()`` gives)."""
    tags = {t["name"]: t.get("description", "") for t in spec.get("tags", [])}
    folders: dict[str, list] = {name: [] for name in tags}
    for path, path_item in spec.get("paths", {}).items():
        for method in HTTP_METHODS:
            op = path_item.get(method)
            if op is None:
                continue
            tag = (op.get("tags") or ["default"])[0]
            folders.setdefault(tag, []).append(_request_item(path, method, op, path_item, spec))

    info = spec.get("info", {})
    collection = {
        "info": {"name": info.get("title", "Postline API"), "schema": SCHEMA_URL,
                 "description": info.get("description", ""), "version": info.get("version", "")},
        "item": [{"name": name, "description": tags.get(name, ""), "item": items}
                 for name, items in folders.items() if items],
        "variable": [
            {"key": "baseUrl", "value": base_url.rstrip("/"), "type": "string",
             "description": "The Postline server, without a trailing slash."},
            {"key": "apiKey", "value": "sk_test_replace_me", "type": "string",
             "description": "Your secret API key (`sk_test_…` for test mode, `sk_live_…` for live)."},
        ],
    }
    auth = _auth(spec.get("security"), spec.get("components", {}).get("securitySchemes", {}))
    if auth is not None and auth["type"] != "noauth":
        collection["auth"] = auth
    return collection
