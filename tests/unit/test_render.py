"""The mustache renderer (app.templates.render): escaping, sections, variables, and what it refuses to do."""
from __future__ import annotations

import time

import pytest

from app.errors import ValidationError
from app.templates import render
from app.templates.render import build_context, compile_parts, parse_part, render_strings, used_names


def html(source: str, **ctx) -> str:
    return render_strings(None, source, None, ctx)["html"]


def text(source: str, **ctx) -> str:
    return render_strings(None, None, source, ctx)["text"]


def invalid(fn, *args, param="html"):
    with pytest.raises(ValidationError) as exc:
        fn(*args)
    assert exc.value.code == "invalid_template" and exc.value.param == param, (exc.value.code, exc.value.param)
    return exc.value


def test_html_escapes_double_and_not_triple_mustache():
    assert html("<p>{{x}}</p>", x="<b>&\"'") == "<p>&lt;b&gt;&amp;&quot;&#x27;</p>"
    assert html("{{{x}}}|{{& x}}", x="<b>") == "<b>|<b>"
    assert html('<a href="{{u}}">', u='" onmouseover="alert(1)') == '<a href="&quot; onmouseover=&quot;alert(1)">'


def test_text_and_subject_are_not_escaped():
    out = render_strings("Hi {{name}} & co", "<p>{{name}}</p>", "Hi {{name}}", {"name": "<Ada> & 'Bob'"})
    assert out == {"subject": "Hi <Ada> & 'Bob' & co", "html": "<p>&lt;Ada&gt; &amp; &#x27;Bob&#x27;</p>",
                   "text": "Hi <Ada> & 'Bob'"}


def test_values_are_stringified_plainly():
    assert text("{{a}}|{{b}}|{{c}}|{{d}}|{{e}}|{{f}}|{{g}}", a=None, b=True, c=3, d=2.0, e=2.5, f=["x", "y"],
                g={"k": 1}) == "|true|3|2|2.5|x, y|"
    assert text("{{missing}}|{{a.b.c}}|{{.}}") == "||"


def test_sections_and_inverted_sections():
    src = "{{#items}}[{{name}}:{{qty}}]{{/items}}{{^items}}none{{/items}}"
    assert text(src, items=[{"name": "a", "qty": 1}, {"name": "b", "qty": 2}]) == "[a:1][b:2]"
    assert text(src, items=[]) == "none"
    assert text(src) == "none"
    assert text("{{#vip}}VIP {{name}}{{/vip}}{{^vip}}guest{{/vip}}", vip=True, name="Ada") == "VIP Ada"
    assert text("{{#vip}}VIP{{/vip}}{{^vip}}guest{{/vip}}", vip=False) == "guest"
    assert text("{{#tags}}<{{.}}>{{/tags}}", tags=["a", "b"]) == "<a><b>"
    assert text("{{#user}}{{first}} {{last}}{{/user}}", user={"first": "A", "last": "L"}) == "A L"
    assert text("{{! a comment }}x{{=<% %>=}}<% a %>{{a}}", a="1") == "x1{{a}}"


def test_dotted_names_and_contact_context():
    ctx = build_context({"first_name": "Override"}, contact={"email": "ada@example.com", "first_name": "Ada",
                                                              "last_name": "L", "attributes": {"plan": "pro"}},
                        unsubscribe_url="https://x.test/u/tok")
    out = render_strings("{{first_name}} {{last_name}}", None,
                         "{{contact.first_name}} {{email}} {{contact.attributes.plan}} {{unsubscribe_url}}", ctx)
    assert out["subject"] == "Override L"
    assert out["text"] == "Ada ada@example.com pro https://x.test/u/tok"


def test_contact_model_and_odd_values_become_plain_data():
    class Contact:  # stands in for the model: attributes read once, never handed to the engine
        email, first_name, last_name, phone_number = "c@example.com", "C", None, None
        id, attributes, tags, timezone, locale, external_id = "con_1", {"n": 1}, ["t"], None, None, None

        def secret(self):
            raise AssertionError("never called")

    ctx = build_context({"obj": Contact(), "when": __import__("datetime").datetime(2026, 1, 2, 3, 4, 5)},
                        contact=Contact())
    assert ctx["contact"]["email"] == "c@example.com" and isinstance(ctx["obj"], str)
    assert text("{{obj.secret}}{{contact.secret}}{{when}}", **ctx) == "2026-01-02T03:04:05Z"


def test_required_defaults_and_missing_variables():
    declared = [{"name": "code", "required": True}, {"name": "greeting", "default": "Hello"},
                {"name": "plan", "required": True, "default": "free"}, {"name": "tip", "sample": "S"}]
    ctx = build_context({"code": "X1"}, declared=declared)
    assert (ctx["code"], ctx["greeting"], ctx["plan"], ctx.get("tip")) == ("X1", "Hello", "free", None)
    assert build_context({"code": "X", "greeting": "Hi"}, declared=declared)["greeting"] == "Hi"
    for variables in ({}, {"code": None}):
        with pytest.raises(ValidationError) as exc:
            build_context(variables, declared=declared)
        assert (exc.value.code, exc.value.param) == ("missing_variable", "variables.code")
    assert build_context({}, declared=[{"name": "code", "required": True, "sample": "S"}],
                         use_samples=True)["code"] == "S"  # previews use samples
    assert build_context({"code": ""}, declared=declared)["code"] == ""  # an empty string is a value
    # A contact field satisfies a required variable of the same name.
    assert build_context({}, declared=[{"name": "first_name", "required": True}],
                         contact={"first_name": "Ada"})["first_name"] == "Ada"


def test_partials_never_load_anything():
    invalid(parse_part, "{{> /etc/passwd}}", "html")
    invalid(parse_part, "x {{>header}} y", "html")
    invalid(render_strings, None, None, "{{#a}}{{> ../../etc/passwd}}{{/a}}", {}, param="text")


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ config.items() }}{{ self.__init__.__globals__ }}",
    "{% for x in range(10) %}{{ x }}{% endfor %}{% import os %}",
    "{{ __import__('os').system('touch /tmp/pwned-by-template') }}",
    "${7*7} <%= 7*7 %> #{7*7}",
])
def test_code_like_templates_execute_nothing(source, tmp_path):
    out = text(source, x="X", config={"SECRET_KEY": "s"})
    assert "49" not in out and "SECRET" not in out and "<class" not in out and "function" not in out
    import os
    assert not os.path.exists("/tmp/pwned-by-template")


@pytest.mark.parametrize("source", ["{{#a}}open", "{{/a}}", "{{#a}}{{/b}}", "{{^a}}x", "{{= =}}", "{{=<%=}}",
                                    "unclosed {{name", "x {{" + "a" * 3000 + "}}"])
def test_parse_errors_are_invalid_template(source):
    err = invalid(parse_part, source, "html")
    assert "not a valid template" in err.message


def test_parse_error_names_the_part():
    invalid(compile_parts, "{{#s}}", "<p>ok</p>", None, param="subject")
    invalid(compile_parts, None, "<p>ok</p>", "{{/t}}", param="text")


def test_subject_line_breaks_are_refused():
    invalid(compile_parts, "Hi\r\nBcc: x@example.com", None, None, param="subject")
    invalid(compile_parts, "Hi\nthere", None, None, param="subject")
    for value in ("x\r\nBcc: victim@example.com", "x\nX-Evil: 1", "x\rY", "x\x00"):
        err = invalid(render_strings, "Hi {{name}}", None, None, {"name": value}, param="subject")
        assert "single line" in err.message
    # Line breaks in html and text are content, not headers.
    assert render_strings(None, "{{v}}", "{{v}}", {"v": "a\r\nb"})["text"] == "a\r\nb"


def test_used_names():
    assert used_names("Hi {{first_name}}", "{{#items}}{{name}}{{/items}}{{{raw}}}{{contact.email}}",
                      "{{^none}}{{.}}{{/none}}{{! comment}}") == {"first_name", "items", "name", "raw", "contact",
                                                                  "none"}
    compiled = compile_parts(None, "{{#items}}{{name}}{{/items}}{{top}}", None)
    assert compiled.top == {"items", "top"}


def test_parsed_templates_are_cached_per_version():
    render.clear_caches()
    first = compile_parts("s {{a}}", "<p>{{a}}</p>", None, cache_key=("tmpl_x", 1))
    assert compile_parts("ignored", None, None, cache_key=("tmpl_x", 1)) is first
    assert compile_parts("s {{a}}", "<p>{{a}}</p>", None).parts["html"] is first.parts["html"]  # by content too
    for i in range(render.CACHE_SIZE + 10):
        compile_parts(f"{i}", None, None, cache_key=("tmpl_y", i))
    assert len(render._by_version) == render.CACHE_SIZE


def test_rendering_is_fast(monkeypatch):
    """A typical email (a few dozen tags), parsed once and rendered per recipient: well under a millisecond."""
    body = "<p>Hi {{first_name}},</p>" + "<tr><td>{{contact.email}}</td><td>{{plan}}</td></tr>" * 15 + \
           "{{#items}}<li>{{name}}: {{qty}}</li>{{/items}}<a href=\"{{unsubscribe_url}}\">unsubscribe</a>"
    compiled = compile_parts("Hi {{first_name}}", body, "Hi {{first_name}} {{plan}}", cache_key=("tmpl_fast", 1))
    calls = []
    monkeypatch.setattr(render, "parse_part", lambda *a: calls.append(a))  # a re-parse would show up here
    start = time.perf_counter()
    for i in range(1000):
        again = compile_parts("Hi {{first_name}}", body, "Hi {{first_name}} {{plan}}", cache_key=("tmpl_fast", 1))
        ctx = build_context({"plan": "pro", "items": [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}]},
                            contact={"first_name": f"P{i}", "email": f"p{i}@example.com"},
                            unsubscribe_url=f"https://x.test/u/{i}")
        out = render.render_compiled(again, ctx)
    elapsed = time.perf_counter() - start
    assert calls == [] and again is compiled
    assert out["subject"] == "Hi P999" and "p999@example.com" in out["html"]
    assert elapsed < 3.0, f"{elapsed:.2f}s for 1000 renders"


@pytest.mark.parametrize("source", [" " * 200_000 + "x", "{{{a}}" * 50_000, "{{" * 100_000,
                                    ("\t" * 40 + "{{a}}\n") * 20_000])
def test_pathological_input_parses_in_linear_time(source):
    """pystache's own expressions took 22 s on 40 KB of spaces (quadratic); these would take minutes.  The
    bound is loose on purpose: a busy machine must not fail it, a quadratic parser must."""
    start = time.perf_counter()
    try:
        parse_part(source, "html")
    except ValidationError:
        pass
    assert time.perf_counter() - start < 10.0


def test_output_is_bounded():
    with pytest.raises(ValidationError) as exc:
        html("{{#a}}{{#a}}{{#a}}" + "x" * 100 + "{{/a}}{{/a}}{{/a}}", a=list(range(300)))
    assert exc.value.code == "invalid_template"
