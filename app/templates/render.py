"""Mustache rendering for user-authored templates (pystache): logic-less, no code, no files.

What a template may do: interpolate (``{{name}}`` HTML-escaped in html, ``{{{name}}}`` / ``{{&name}}`` raw),
dotted names (``{{contact.first_name}}``), sections and inverted sections, comments, delimiter changes.
What it may not do:

* run code — mustache has no expressions; ``{{ ''.__class__ }}`` is just a (missing) name.  The context
  holds only plain JSON values (``plain()`` converts everything else), so pystache never calls
  ``getattr`` on a Python object and there are no lambdas.
* read files — partials (``{{> name}}``) are refused when the template is parsed (``invalid_template``),
  and the engine's partial resolver returns nothing anyway.
* smuggle headers — a subject template is one line, and a rendered subject containing CR, LF or NUL
  (from a variable's value) is refused with ``invalid_template`` (param ``subject``) rather than cleaned:
  API.md 3.3 refuses header values with line breaks, and silently changing a subject is worse.
* run away — a render has a budget of section iterations and output characters, and parsing is linear
  in the template's size (a pre-scan refuses unclosed tags, and pystache's tag expression is replaced by
  one without its quadratic cases).

Parsing is the costly part (regex scanning), so parsed templates are cached: ``compile_parts`` keeps the
parsed form of each (template id, version) in a small LRU, and ad-hoc content is cached by its text.
"""
from __future__ import annotations

import functools
import json
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape as _html_escape

from pystache.context import ContextStack, KeyNotFoundError
from pystache.parsed import ParsedTemplate
from pystache.parser import ParsingError, _InvertedNode, _Parser, _PartialNode, _SectionNode
from pystache.renderengine import RenderEngine

from ..errors import ValidationError

PARTS = ("subject", "html", "text")
# Names every template can use without declaring them (API.md 5: contact fields and unsubscribe_url).
CONTACT_FIELDS = ("id", "email", "phone_number", "first_name", "last_name", "attributes", "tags", "timezone",
                  "locale", "external_id")
TOP_LEVEL_CONTACT_FIELDS = ("first_name", "last_name", "email", "phone_number")
RESERVED_NAMES = ("contact", "unsubscribe_url")
BUILTIN_NAMES = frozenset(RESERVED_NAMES + TOP_LEVEL_CONTACT_FIELDS)

MAX_SECTION_ITERATIONS = 100_000
MAX_OUTPUT_CHARS = 10_000_000
CACHE_SIZE = 512
_HEADER_BREAKERS = re.compile(r"[\r\n\x00]")


class _RenderBudgetExceeded(Exception):
    pass


# ---------------------------------------------------------------------------------------------- parsing

MAX_TAG_CHARS = 2000


@functools.lru_cache(maxsize=64)
def _tag_re(otag: str, ctag: str) -> re.Pattern:
    """pystache's tag expression, made linear: its leading ``[ \\t]*`` is anchored to the start of a
    blank run (pystache's own retries it at every position of the run: 40 KB of spaces took 22 s), and
    a raw name stops at the first ``}`` (``.+?`` rescanned the rest of the line for every ``{{{``)."""
    return re.compile(r"""
        (?P<whitespace>(?<![\ \t])[\ \t]*)
        %(otag)s \s*
        (?:
          (?P<change>=) \s* (?P<delims>.+?)   \s* = |
          (?P<raw>{)    \s* (?P<raw_name>[^}\r\n]+?) \s* } |
          (?P<tag>[!>&/#^]?)  \s* (?P<tag_key>[\s\S]+?)
        )
        \s* %(ctag)s
    """ % {"otag": re.escape(otag), "ctag": re.escape(ctag)}, re.VERBOSE)


class _LinearParser(_Parser):
    def _compile_delimiters(self):
        if len(self._delimiters) < 2:
            raise ValueError("a delimiter change needs two delimiters, e.g. {{=<% %>=}}.")
        self._template_re = _tag_re(self._delimiters[0], self._delimiters[1])


_CHANGE = re.compile(r"^\s*=\s*(.+?)\s*=\s*$")


def _prescan(source: str) -> None:
    """Every opening delimiter has its closing one, and no tag is huge: checked in linear time before
    pystache's regular expressions see the text (a dangling ``{{`` made them rescan to the end)."""
    otag, ctag = "{{", "}}"
    pos = 0
    while True:
        start = source.find(otag, pos)
        if start < 0:
            return
        end = source.find(ctag, start + len(otag) + 1)
        if end < 0 or end - start > MAX_TAG_CHARS:
            line = source.count("\n", 0, start) + 1
            if end < 0:
                raise ValueError(f"unclosed tag '{source[start:start + 20]}' on line {line}.")
            raise ValueError(f"tag on line {line} is longer than {MAX_TAG_CHARS} characters.")
        pos = end + len(ctag)
        change = _CHANGE.match(source[start + len(otag):end])
        if change and "\n" not in change.group(1):
            delims = change.group(1).split()
            if len(delims) < 2:
                raise ValueError("a delimiter change needs two delimiters, e.g. {{=<% %>=}}.")
            otag, ctag = delims[0], delims[1]

@dataclass(frozen=True)
class Compiled:
    """One part (subject, html or text) parsed once, with the names it uses."""
    source: str
    parsed: ParsedTemplate
    names: frozenset  # first segment of every name used (``contact`` for ``{{contact.email}}``)
    top: frozenset = frozenset()  # the same, outside sections (inside, a name may be the item's own)


class _BoundedSection(_SectionNode):
    """A section that charges what it renders to the engine's output budget, so a loop (or nested loops)
    over large lists cannot produce unbounded output.  Lambdas are not supported (the context has none)."""

    def render(self, engine, context):
        parts = []
        for value in engine.fetch_section_data(context, self.key):
            if callable(value):
                continue
            context.push(value)
            part = self.parsed.render(engine, context)
            context.pop()
            engine.charge(len(part))
            parts.append(part)
        return "".join(parts)


def _walk(nodes, out: set, top: set, depth: int = 0) -> None:
    for node in nodes:
        if isinstance(node, str):
            continue
        if isinstance(node, _PartialNode):
            raise ValueError(f"Partials ({{{{> {node.key}}}}}) are not supported.")
        key = getattr(node, "key", None)
        if isinstance(key, str) and key.strip() and key != ".":
            out.add(key.split(".")[0])
            if depth == 0:
                top.add(key.split(".")[0])
        if isinstance(node, _SectionNode):
            node.__class__ = _BoundedSection
            _walk(node.parsed._parse_tree, out, top, depth + 1)
        elif isinstance(node, _InvertedNode):
            _walk(node.parsed_section._parse_tree, out, top, depth + 1)


def parse_part(source: str, param: str) -> Compiled:
    """Parse one part; ``invalid_template`` (with ``param``) for a syntax error, an unclosed or
    mismatched section, a bad delimiter change, or a partial."""
    if not isinstance(source, str):
        raise ValidationError(f"'{param}' must be a string.", code="invalid_template", param=param)
    try:
        _prescan(source)
        parsed = _LinearParser(("{{", "}}"), raise_on_mismatch=True).parse(source)
        names: set = set()
        top: set = set()
        _walk(parsed._parse_tree, names, top)
    except ParsingError as exc:
        raise ValidationError(f"'{param}' is not a valid template: {exc}", code="invalid_template",
                              param=param) from None
    except Exception as exc:  # any other parse failure: a bad delimiter change, a runaway nesting …
        detail = str(exc) if isinstance(exc, ValueError) else "malformed tag or delimiter change."
        raise ValidationError(f"'{param}' is not a valid template: {detail}", code="invalid_template",
                              param=param) from None
    return Compiled(source, parsed, frozenset(names), frozenset(top))


class _LRU:
    """A tiny thread-safe LRU (RQ workers and the threaded web server share it per process)."""

    def __init__(self, size: int):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_by_version = _LRU(CACHE_SIZE)  # (template_id, version) -> CompiledTemplate
_by_source = _LRU(CACHE_SIZE)  # (param, source) -> Compiled


def _compiled(source: str, param: str) -> Compiled:
    key = (param, source)
    hit = _by_source.get(key)
    if hit is None:
        hit = parse_part(source, param)
        _by_source.put(key, hit)
    return hit


@dataclass(frozen=True)
class CompiledTemplate:
    """Every part of one template version, parsed."""
    parts: dict  # part name -> Compiled | None
    variables: tuple = ()  # the declared variables [{name, sample, default, required}]
    names: frozenset = field(default_factory=frozenset)
    top: frozenset = field(default_factory=frozenset)


def compile_parts(subject: str | None, html: str | None, text: str | None, variables=None,
                  cache_key: tuple | None = None) -> CompiledTemplate:
    """Parse the three parts (``invalid_template`` naming the first bad one).  With ``cache_key`` — the
    ``(template_id, version)`` of a stored version, whose content never changes — the result is cached."""
    if cache_key is not None:
        hit = _by_version.get(cache_key)
        if hit is not None:
            return hit
    if subject is not None and _HEADER_BREAKERS.search(subject):
        raise ValidationError("The subject must be a single line (no CR, LF or NUL).", code="invalid_template",
                              param="subject")
    parts = {name: (_compiled(src, name) if src is not None else None)
             for name, src in (("subject", subject), ("html", html), ("text", text))}
    names = frozenset().union(*(p.names for p in parts.values() if p is not None))
    top = frozenset().union(*(p.top for p in parts.values() if p is not None))
    result = CompiledTemplate(parts, tuple(variables or ()), names, top)
    if cache_key is not None:
        _by_version.put(cache_key, result)
    return result


def used_names(subject: str | None, html: str | None, text: str | None) -> set[str]:
    """The top-level names a template uses (``contact`` for ``{{contact.email}}``), sections included."""
    return set(compile_parts(subject, html, text).names)


def clear_caches() -> None:
    _by_version.clear()
    _by_source.clear()


# ---------------------------------------------------------------------------------------------- context

def plain(value, _depth: int = 0):
    """``value`` as plain JSON data (dict/list/str/int/float/bool/None): nothing with attributes or
    methods ever reaches the engine."""
    if _depth > 32:
        return None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)  # drops str subclasses such as markupsafe.Markup
    if isinstance(value, dict):
        return {str(k): plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, _depth + 1) for v in value]
    if isinstance(value, datetime):
        from ..timeutil import rfc3339
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def contact_fields(contact) -> dict:
    """A contact (model or dict) as the ``contact`` object templates see."""
    if contact is None:
        return {}
    if isinstance(contact, dict):
        data = {k: contact.get(k) for k in CONTACT_FIELDS if k in contact}
        for k, v in contact.items():  # anything else the caller chose to expose (e.g. consent)
            data.setdefault(k, v)
    else:
        data = {k: getattr(contact, k, None) for k in CONTACT_FIELDS}
    return plain(data)


def build_context(variables: dict | None = None, *, declared=None, contact=None,
                  unsubscribe_url: str | None = None, use_samples: bool = False) -> dict:
    """The data a template is rendered with.

    Precedence: supplied ``variables``; then, for a declared variable not supplied, its ``sample``
    (previews only, ``use_samples``) or its ``default``; then the contact's ``first_name``, ``last_name``,
    ``email`` and ``phone_number`` at top level when no variable has that name.  ``contact`` and
    ``unsubscribe_url`` always come from the caller's arguments.  A declared ``required`` variable that
    is still missing (absent or null) → ``missing_variable`` with param ``variables.<name>``."""
    ctx = plain(dict(variables or {}))
    for var in declared or ():
        name = var.get("name")
        if ctx.get(name) is not None:
            continue
        if use_samples and var.get("sample") is not None:
            ctx[name] = plain(var["sample"])
        elif var.get("default") is not None:
            ctx[name] = plain(var["default"])
    person = contact_fields(contact)
    for name in TOP_LEVEL_CONTACT_FIELDS:
        if ctx.get(name) is None and person.get(name) is not None:
            ctx[name] = person[name]
    ctx["contact"] = person
    ctx["unsubscribe_url"] = unsubscribe_url or ""
    for var in declared or ():
        if var.get("required") and ctx.get(var.get("name")) is None:
            raise ValidationError(f"The template requires the variable '{var['name']}'.",
                                  code="missing_variable", param=f"variables.{var['name']}")
    return ctx


# ---------------------------------------------------------------------------------------------- rendering

def _to_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(_to_str(v) for v in value if not isinstance(v, (dict, list, tuple)))
    if isinstance(value, dict):
        return ""  # an object has no text of its own (``{{.}}`` at top level, ``{{contact}}``)
    return str(value)


def _refuse_partial(name):
    return ""  # never reached (partials are refused at parse time); never touches the filesystem


class _Engine(RenderEngine):
    """pystache's engine with a budget: section iterations and output size are bounded."""

    def __init__(self, escape_html: bool):
        self.iterations = 0
        self.output = 0

        def literal(s):
            s = str(s)
            self.charge(len(s))
            return s

        def escape(s):
            return literal(_html_escape(str(s), quote=True) if escape_html else s)

        super().__init__(literal=literal, escape=escape, resolve_context=_resolve,
                         resolve_partial=_refuse_partial, to_str=_to_str)

    def charge(self, chars: int) -> None:
        self.output += chars
        if self.output > MAX_OUTPUT_CHARS:
            raise _RenderBudgetExceeded

    def fetch_section_data(self, context, name):
        data = super().fetch_section_data(context, name)
        self.iterations += len(data)
        if self.iterations > MAX_SECTION_ITERATIONS:
            raise _RenderBudgetExceeded
        return data

    def _render_value(self, val, context, delimiters=None):  # lambdas only; the context has none
        return ""


def _resolve(stack, name):
    try:
        return stack.get(name)
    except KeyNotFoundError:
        return ""


def render_part(compiled: Compiled | None, context: dict, *, escape_html: bool, param: str) -> str | None:
    if compiled is None:
        return None
    engine = _Engine(escape_html)
    try:
        return compiled.parsed.render(engine, ContextStack(context))
    except _RenderBudgetExceeded:
        raise ValidationError(f"Rendering '{param}' produced too much output (loops over large lists?).",
                              code="invalid_template", param=param) from None
    except RecursionError:
        raise ValidationError(f"'{param}' nests too deeply to render.", code="invalid_template",
                              param=param) from None


def render_compiled(template: CompiledTemplate, context: dict) -> dict:
    """``{subject, html, text}``: html escaped, subject and text raw; subject checked to be one line."""
    subject = render_part(template.parts["subject"], context, escape_html=False, param="subject")
    if subject is not None and _HEADER_BREAKERS.search(subject):
        raise ValidationError("The rendered subject contains a line break or NUL (from a variable's value); "
                              "a subject must be a single line.", code="invalid_template", param="subject")
    return {
        "subject": subject,
        "html": render_part(template.parts["html"], context, escape_html=True, param="html"),
        "text": render_part(template.parts["text"], context, escape_html=False, param="text"),
    }


def render_strings(subject: str | None, html: str | None, text: str | None, context: dict) -> dict:
    """Parse (cached by content) and render ad-hoc content with a ready context."""
    return render_compiled(compile_parts(subject, html, text), plain(context))


def to_json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)
