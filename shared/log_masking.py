"""Secrets masked in every log line, however they got into it (docs/OPERATIONS.md, "Logs").

Two rules, applied to every field of a line after exceptions are formatted, so messages,
structured fields (nested in dicts, lists and header pairs) and tracebacks are all covered:

* by name: the value of a field or pair whose key names a secret (`password`, `secret`,
  `token`, `api_key`, `authorization`, `cookie`, `pepper`, `credential`: `smtp_password`,
  `X-API-Key`, `Set-Cookie` …) is masked whatever it looks like;
* by shape, inside any text: Ferry API keys, JWTs, webhook secrets (`whsec_…`),
  `Bearer`/`Basic` credentials, the password of a URL (`scheme://user:…@host`), and
  `key=value` / `"key": "value"` pairs whose key names a secret.

A masked value keeps a recognisable prefix and, when long enough to give nothing away, its
last four characters: `ferry_live_…a1b2`, `eyJ…x9Zw`, `whsec_…Qk0=`, `Bearer eyJ…x9Zw`.
Passwords and `Basic` credentials keep nothing: `…`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "…"
#: Shorter secrets keep no tail: four characters of a short value would say too much.
MIN_TAIL_LENGTH = 16
#: Recognisable prefixes kept in front of the mask, longest first.
KNOWN_PREFIXES = ("ferry_live_", "ferry_test_", "whsec_", "eyJ")

_WORDS = (
    r"password|passwd|passphrase|pwd|secret|token|api_?key|pepper|authori[sz]ation"
    r"|credential|private_?key"
)
_SECRET_WORDS = re.compile(rf"{_WORDS}|cookie|(?:^|_)pass(?:_|$)")
_PASSWORD_WORDS = re.compile(r"pass|pwd|credential")
#: Keys that merely describe a secret (its id, kind, age, where it lives) are not secrets.
_PUBLIC_SUFFIXES = (
    "_id", "_ids", "_type", "_types", "_at", "_count", "_prefix", "_minutes", "_hours",
    "_days", "_seconds", "_s", "_rounds", "_version", "_file", "_path", "_url", "_name",
    "_length", "_bytes",
)  # fmt: skip

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^:/@\s\"']*:)(?P<pw>[^@/\s\"']+)@")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>[Bb]earer|BEARER|[Bb]asic|BASIC)(?P<gap>\s+)"
                          r"(?P<cred>[A-Za-z0-9._~+/=-]{8,})")  # fmt: skip
_API_KEY = re.compile(r"\bferry_(?:live|test)_[A-Za-z0-9_]{20,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{8,}")
#: `key: value`, `key=value`, `"key": "value"`, and a pair's `('key', 'value')`; a bytes
#: literal's `b` is part of the separator.
_SEP = r"(?:[\"']?\s*[:=]|[\"']\s*,)\s*(?-i:b(?=[\"']))?"
#: A quoted value runs to its closing quote (escapes included); a bare one to the next space
#: (a password may hold any other character).
_VALUE = r"(?P<quote>[\"'])?(?P<value>(?(quote)(?:\\.|(?!(?P=quote))[^\r\n\\])+|{bare}))"
_COOKIE = re.compile(rf"(?i)(?P<head>\b(?:set-)?cookie{_SEP})" + _VALUE.format(bare=r"[^\r\n]+"))
_PAIR = re.compile(
    rf"(?i)(?P<key>[\w-]*(?:{_WORDS})[\w-]*)(?P<sep>{_SEP})" + _VALUE.format(bare=r"[^\s\"']+")
)
#: Text holding none of these (in lower case) cannot hold any of the shapes above and skips
#: the substitutions: the words of `_WORDS` spelled out, and each shape's marker. Plain
#: substring tests, about ten times as fast as one case-insensitive regex over a 4 kB line.
_MARKERS = (
    "ferry_", "eyj", "whsec_", "bearer", "basic", "cookie", "://", "password", "passwd",
    "passphrase", "pwd", "secret", "token", "apikey", "api_key", "pepper", "authoris",
    "authoriz", "credential", "privatekey", "private_key",
)  # fmt: skip


def _maybe(text: str) -> bool:
    low = text.lower()
    return any(marker in low for marker in _MARKERS)


def _normal(key: Any) -> str:
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return str(key).lower().replace("-", "_")


def is_secret_key(key: Any) -> bool:
    """Whether a field or header named `key` holds a secret."""
    name = _normal(key)
    return bool(_SECRET_WORDS.search(name)) and not name.endswith(_PUBLIC_SUFFIXES)


def mask_value(value: str, *, keep_tail: bool = True) -> str:
    """`value` masked: its recognisable prefix (or auth scheme), `…`, and its last four
    characters when it is long enough and `keep_tail`."""
    scheme = _AUTH_SCHEME.fullmatch(value.strip())
    if scheme is not None:
        basic = scheme["scheme"].lower() == "basic"
        return f"{scheme['scheme']} {mask_value(scheme['cred'], keep_tail=not basic)}"
    prefix = next((p for p in KNOWN_PREFIXES if value.startswith(p)), "")
    rest = value[len(prefix) :]
    tail = rest[-4:] if keep_tail and len(rest) >= MIN_TAIL_LENGTH else ""
    return f"{prefix}{MASK}{tail}"


def _quoted(match: re.Match[str], value: str) -> str:
    quote = match["quote"] or ""
    return f"{quote}{value}"


def _mask_pair(match: re.Match[str]) -> str:
    key, value = match["key"], match["value"]
    if MASK in value or not is_secret_key(key) or value.lower() in ("bearer", "basic"):
        return match[0]
    password = bool(_PASSWORD_WORDS.search(_normal(key)))
    return f"{key}{match['sep']}{_quoted(match, mask_value(value, keep_tail=not password))}"


def _mask_cookie(match: re.Match[str]) -> str:
    if MASK in match["value"]:
        return match[0]
    return match["head"] + _quoted(match, mask_value(match["value"]))


def _mask_scheme(match: re.Match[str]) -> str:
    basic = match["scheme"].lower() == "basic"
    return f"{match['scheme']}{match['gap']}{mask_value(match['cred'], keep_tail=not basic)}"


def mask_text(text: str) -> str:
    """`text` with every secret of a known shape masked (see the module's docstring)."""
    return _substitute(text) if _maybe(text) else text


def _substitute(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _AUTH_SCHEME.sub(_mask_scheme, text)
    for shape in (_API_KEY, _JWT, _WEBHOOK_SECRET):
        text = shape.sub(lambda m: mask_value(m[0]), text)
    text = _COOKIE.sub(_mask_cookie, text)
    return _PAIR.sub(_mask_pair, text)


def _mask_secret(key: Any, value: Any) -> Any:
    """The value of a field whose key names a secret."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return masked(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = str(value)
    if MASK in text:
        return text
    return mask_value(text, keep_tail=not _PASSWORD_WORDS.search(_normal(key)))


def masked(value: Any, key: Any = None) -> Any:
    """`value` (a field of a log line, named `key`) with its secrets masked; containers are
    walked, and a `(name, value)` pair such as a header is masked by its name."""
    if key is not None and is_secret_key(key):
        return _mask_secret(key, value)
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str | bytes):
        name = value[0].decode("latin-1") if isinstance(value[0], bytes) else value[0]
        return (name, masked(value[1], name))
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(item) for item in value]
    if isinstance(value, bytes):
        return mask_text(value.decode("latin-1"))
    return mask_text(str(value))


def mask_event(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The structlog processor: every field of the line masked (`masked`)."""
    return {key: masked(value, key) for key, value in event_dict.items()}
