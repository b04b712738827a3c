"""The input rules of both APIs, as reusable annotated types (docs/INPUT.md lists them).

Every path, query, header, form and JSON parameter takes one of these (or a model built of
them), so a malformed value is refused at the edge as a 422 problem+json naming the
parameter, and never reaches PostgreSQL (which refuses NUL bytes and integers beyond
64 bits with an error of its own). The bounds are plain pydantic metadata, so each one
also appears in the OpenAPI schema: what the schema allows, the route accepts.

- `SafeStr` refuses NUL and the other C0 control characters and DEL; `safe_str(n)` bounds
  its length; `MultilineStr` allows newline and tab (for free text documented as such).
- `PageLimit`, `PageOffset`: pagination, bounded by what PostgreSQL's `integer` holds.
- `RequestId`, `UserId`, `ApiKeyId`, `BatchFileName`, `QuarantineName`: ids in their exact
  shape; file names are checked before any filesystem call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BeforeValidator, StringConstraints

# No C0 control character (NUL included) and no DEL, anywhere in the string.
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
# The same, but newline, carriage return and tab may appear (multi-line free text).
MULTILINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

MAX_TEXT = 1_000  # characters of a free-text field (a reason, a name) unless said otherwise
INT32_MAX = 2**31 - 1  # PostgreSQL integer; larger offsets could only be refused later
MAX_PAGE_LIMIT = 100
MAX_PAGE_OFFSET = INT32_MAX
MAX_FILE_NAME_BYTES = 255  # a file name on every common filesystem


def safe_str(max_length: int = MAX_TEXT, *, min_length: int = 1) -> type[str]:
    """A string of `min_length`..`max_length` characters with no control character."""
    return Annotated[  # type: ignore[return-value]
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_CONTROL)
    ]


def multiline_str(max_length: int = MAX_TEXT, *, min_length: int = 0) -> type[str]:
    """Free text that may hold newlines and tabs, but no other control character."""
    return Annotated[  # type: ignore[return-value]
        str, StringConstraints(min_length=min_length, max_length=max_length, pattern=MULTILINE)
    ]


SafeStr = safe_str()
MultilineStr = multiline_str()

PageLimit = Annotated[int, Ge(1), Le(MAX_PAGE_LIMIT)]
PageOffset = Annotated[int, Ge(0), Le(MAX_PAGE_OFFSET)]
BoundedInt = Annotated[int, Ge(0), Le(INT32_MAX)]

# The exact string `str(uuid.UUID(x))` gives: lower-case, hyphenated.
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
RequestId = Annotated[str, StringConstraints(min_length=36, max_length=36, pattern=UUID_PATTERN)]
# A user id as the response network issues it (a UUID today; any printable id up to 64).
UserId = safe_str(64)
# The key id inside `ferry_<env>_<key id>_<secret>` (base32, lower-case).
ApiKeyId = Annotated[str, StringConstraints(min_length=12, max_length=12, pattern=r"^[a-z2-7]+$")]
# `<stream>-<source>-<seq>-<batch id>.jsonl` (`transfer.format.names`): checked before any
# filesystem call, so no separator, no `..`, no NUL and at most 255 bytes ever reach one.
# The sequence number exactly as written (`f"{seq:08d}"`, 1 ≤ seq ≤ 10**18), without lookaround.
_SEQ = "|".join(
    [f"{'0' * (7 - n)}[1-9][0-9]{{{n}}}" for n in range(7)]
    + ["[1-9][0-9]{7,17}", "1000000000000000000"]
)
BATCH_FILE_PATTERN = (
    r"^(requests|results|users|settings|profile_types|acks)-[a-z][a-z0-9]{0,31}-"
    rf"({_SEQ})-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$"
)
BatchFileName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_FILE_NAME_BYTES, pattern=BATCH_FILE_PATTERN)
]
# A file in quarantine: the name it arrived under, made safe (`transfer.protocol.quarantine`),
# short enough that its `.reason.json` beside it still fits in a file name.
QUARANTINE_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
QUARANTINE_NAME_MAX = MAX_FILE_NAME_BYTES - len(".reason.json")
QuarantineName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=QUARANTINE_NAME_MAX, pattern=QUARANTINE_NAME_PATTERN
    ),
]


def _reads_as_number(text: str) -> bool:
    try:
        float(text)  # "1700000000", "-4.2e-184", "nan": pydantic would read some as Unix time
    except ValueError:
        return False
    return True


def _not_a_number(value: object) -> object:
    if isinstance(value, int | float) or (isinstance(value, str) and _reads_as_number(value)):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-12-05T10:00:00Z")
    return value


# A date-time as RFC 3339 text only (pydantic alone would also read a bare number as Unix time).
DateTimeText = Annotated[datetime, BeforeValidator(_not_a_number)]


def _whole_number(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("expected an integer")
    return value


def json_int(minimum: int, maximum: int) -> type[int]:
    """An integer in JSON within bounds: 12944 or 12944.0 (JSON has one number type), never
    "12944" or true. (The bounds come before the check so the schema shows them.)"""
    return Annotated[int, Ge(minimum), Le(maximum), BeforeValidator(_whole_number)]  # type: ignore[return-value]
