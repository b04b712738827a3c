"""How a query spec is refused: each `Problem`, and the `QuerySpecError` carrying them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .limits import Loc


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a query: where (`path` into the spec) and what (`msg`)."""

    path: Loc
    msg: str

    @property
    def loc(self) -> str:
        """The location as a dotted path, e.g. ``query.all.0.range.field`` ("" = whole spec)."""
        return ".".join(str(p) for p in self.path)

    @property
    def pointer(self) -> str:
        """The location as a JSON pointer, e.g. ``/query/all/0/range/field``."""
        return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in self.path)

    def __str__(self) -> str:
        return f"{self.loc or '(query spec)'}: {self.msg}"

    def to_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "path": list(self.path), "msg": self.msg}


class QuerySpecError(ValueError):
    """A query spec was refused; `problems` lists every reason, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
