"""Reference renderer for the chat-template tests: Debian's python3-jinja2,
configured as Hugging Face transformers configures it for apply_chat_template
(sandboxed, trim_blocks, lstrip_blocks, loop controls, tojson without ASCII
escaping, raise_exception, strftime_now).

Reads {"cases": [{"template": str, "variables": {...}}, ...]} on stdin and
prints a JSON list with {"text": str} or {"error": str} per case.
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    cases = json.load(sys.stdin)["cases"]
    out = []
    for case in cases:
        try:
            out.append({"text": env.from_string(case["template"]).render(**case["variables"])})
        except Exception as e:  # the test compares failures too
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout, ensure_ascii=False)


main()
