"""Hostile values for every parameter of every route, generated from an app's OpenAPI schema.

`hostile_calls(schema)` walks each operation and, for each of its parameters (path, query,
header) and each leaf of its JSON or form body, yields one call per hostile value with every
other input left valid: a route added later is covered without editing the tests. The
valid values come from the schema: its examples and defaults, or the simplest string its
pattern matches.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import quote

from hypothesis import find
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_JSON = "application/problem+json"

HOSTILE_STRINGS: list[str] = [
    "\x00",
    "a\x00b",
    "\x01",
    "line\nbreak",
    "\x1b[31mred",
    "\x7f",
    "x" * 10_000,
    "../../etc/passwd",
    "..",
    "a/b",
    "%00",
    "\u202eevil",
    "\U0001f600" * 100,
    "lone \ud800 surrogate",
    "",
    " ",
    "A" * 300 + ".jsonl",
    "not-a-uuid",
    "0190A6C0-0000-7000-8000-000000000000",
]
HOSTILE_NUMBERS: list[Any] = [
    2**63,
    2**64,
    -1,
    -(2**63) - 1,
    "1e400",
    "NaN",
    "9" * 400,
    "0x10",
]
# Percent-encoded bytes that are not UTF-8 (overlong, surrogate, stray continuation).
HOSTILE_RAW_PATH = ["%ff", "%c0%af", "%ed%a0%80", "%80"]
HOSTILE_VALUES = HOSTILE_STRINGS + HOSTILE_NUMBERS


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the route template
    url: str  # with every path parameter filled, percent-encoded
    what: str  # which input is hostile, for the failure message
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, Any] | None = None

    def send(self, client, auth: dict[str, str]):
        headers = {**auth, **self.headers}
        kwargs: dict[str, Any] = {"params": self.params, "headers": headers}
        if self.json is not None:  # escaped ASCII JSON: a lone surrogate travels as \ud800
            kwargs["content"] = json.dumps(self.json).encode()
            headers["Content-Type"] = "application/json"
        if self.data is not None:
            kwargs["data"] = self.data
        return client.request(self.method, self.url, **kwargs)


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


@cache
def _simplest(pattern: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        return find(st.from_regex(pattern, fullmatch=True), lambda s: True)


def valid_value(schema: dict, node: dict) -> Any:
    """A value the schema accepts: its example, default, or the simplest that fits."""
    node = resolve(schema, node)
    for key in ("examples", "example", "default"):
        if key in node and node[key] is not None:
            value = node[key]
            return value[0] if key == "examples" and isinstance(value, list) else value
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if resolve(schema, o).get("type") != "null"]
        return valid_value(schema, options[0]) if options else None
    if "enum" in node:
        return node["enum"][0]
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if kind == "string":
        if "pattern" in node:
            return _simplest(node["pattern"])
        if node.get("format") == "date-time":
            return "2026-01-01T00:00:00Z"
        return "a" * max(1, node.get("minLength", 1))
    if kind == "integer":
        return node.get("minimum", 1)
    if kind == "number":
        return node.get("minimum", 1.0)
    if kind == "boolean":
        return True
    if kind == "array":
        item = valid_value(schema, node.get("items", {}))
        return [item] * max(1, node.get("minItems", 1))
    if kind == "object" or "properties" in node:
        required = node.get("required", [])
        props = node.get("properties", {})
        return {name: valid_value(schema, props[name]) for name in required if name in props}
    return "a"


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Paths to every leaf of a JSON value (the value itself when it has no children)."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list) and value:
        for i, child in enumerate(value):
            yield from _leaves(child, (*path, i))
    else:
        yield path


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replaced(copy[head], rest, new)
    return copy


def _url(template: str, values: dict[str, str], raw: dict[str, str] | None = None) -> str:
    url = template
    for name, value in values.items():
        encoded = (raw or {}).get(name) or quote(str(value), safe="", errors="surrogatepass")
        url = url.replace("{" + name + "}", encoded)
    return url


def hostile_calls(schema: dict) -> Iterator[Call]:
    for path, item in sorted(schema["paths"].items()):
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is not None:
                yield from _operation_calls(schema, method.upper(), path, operation)


def _operation_calls(schema: dict, method: str, path: str, operation: dict) -> Iterator[Call]:
    parameters = operation.get("parameters", [])
    valid = {p["name"]: valid_value(schema, p.get("schema", {})) for p in parameters}
    in_path = {p["name"] for p in parameters if p["in"] == "path"}
    kind, body = _body(schema, operation)

    def call(what: str, values: dict[str, Any], raw=None, new_body=body) -> Call:
        path_values = {n: v for n, v in values.items() if n in in_path}
        query = {
            p["name"]: values[p["name"]]
            for p in parameters
            if p["in"] == "query" and values.get(p["name"]) is not None
        }
        headers = {
            p["name"]: str(values[p["name"]])
            for p in parameters
            if p["in"] == "header" and values.get(p["name"]) is not None
        }
        json_body = new_body if kind == "json" else None
        form = new_body if kind == "form" else None
        url = _url(path, path_values, raw)
        return Call(method, path, url, what, query, headers, json_body, form)

    for p in parameters:
        name = p["name"]
        for value in HOSTILE_VALUES:
            if p["in"] == "header" and not (str(value).isascii() and str(value).isprintable()):
                continue  # not sendable as a header
            if p["in"] != "path" and not _encodable(value):
                continue  # a lone surrogate has no UTF-8 form outside a path or JSON
            yield call(f"{p['in']} {name}={value!r:.40}", {**valid, name: value})
        if p["in"] == "path":
            for raw in HOSTILE_RAW_PATH:
                yield call(f"path {name}={raw}", valid, raw={name: raw})
    if body is not None:
        for leaf in _leaves(body):
            for value in HOSTILE_VALUES:
                if kind == "form" and not (isinstance(value, str | int) and _encodable(value)):
                    continue
                new_body = _replaced(body, leaf, value)
                where = ".".join(map(str, leaf)) or "body"
                yield call(f"body {where}={value!r:.40}", valid, new_body=new_body)


def _encodable(value: Any) -> bool:
    try:
        str(value).encode()
    except UnicodeEncodeError:
        return False
    return True


def _body(schema: dict, operation: dict) -> tuple[str | None, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return "json", valid_value(schema, content["application/json"].get("schema", {}))
    if "application/x-www-form-urlencoded" in content:
        node = content["application/x-www-form-urlencoded"].get("schema", {})
        return "form", valid_value(schema, node)
    return None, None


def check_reply(call: Call, reply) -> str | None:
    """None when the reply is a clean one: no 5xx, and every 4xx a problem+json naming its
    status. Otherwise what went wrong, with the call that did it."""
    where = f"{call.method} {call.path} with {call.what}"
    if reply.status_code >= 500:
        return f"{where}: {reply.status_code} {reply.text[:200]}"
    if reply.status_code >= 400:
        if not reply.headers.get("content-type", "").startswith(PROBLEM_JSON):
            return f"{where}: {reply.status_code} is not problem+json"
        body = reply.json()
        if body.get("status") != reply.status_code or not body.get("title"):
            return f"{where}: problem body {body}"
    return None


def operations_with_inputs(schema: dict) -> set[tuple[str, str]]:
    """(method, path) of every operation that takes a parameter or a body."""
    return {
        (m.upper(), p)
        for p, ops in schema["paths"].items()
        for m, op in ops.items()
        if op.get("parameters") or op.get("requestBody")
    }


def hostile_failures(client, calls: list[Call], auth: dict[str, str]) -> list[str]:
    """What went wrong over `calls` sent with `auth` (see `check_reply`)."""
    return [f for call in calls if (f := check_reply(call, call.send(client, auth)))]


def credential_failures(client, schema: dict, headers_for) -> list[str]:
    """Every protected operation called with credentials made of hostile text
    (`headers_for(value)` gives the header sets to try): anything but a 401 is a failure."""
    failures = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if not op.get("security"):
                continue
            url = path.replace("{", "").replace("}", "")
            for value in HOSTILE_STRINGS + ["ferry_live_" + "a" * 500, "Bearer", "x.y.z"]:
                if not (value.isascii() and value.isprintable()):
                    continue  # not sendable as a header
                for header in headers_for(value):
                    reply = client.request(method.upper(), url, headers=header)
                    if reply.status_code != 401:
                        failures.append(f"{method.upper()} {path} {header}: {reply.status_code}")
    return failures
