"""Arrows point one way (DESIGN.md §7.9): network packages → `transfer/` → `shared/`.

Every module's imports are read with `ast` (those inside functions and `TYPE_CHECKING`
blocks too) and checked against the rules below; a failure names the file, the line and
the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "transfer", "request_network", "response_network", "ferry")
NETWORKS = ("request_network", "response_network", "ferry")

# (modules the rule is about, imports they must not make, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("shared", ("transfer", *NETWORKS), "shared/ imports neither transfer/ nor a network"),
    ("transfer", NETWORKS, "transfer/ imports no network package"),
    (
        "transfer.format",
        ("transfer.protocol", "transfer.operator"),
        "transfer/format imports nothing else of transfer/",
    ),
    (
        "transfer.format",
        ("sqlalchemy", "psycopg", "shared.db", "shared.settings", "shared.models"),
        "transfer/format is pure: no database, no settings",
    ),
    ("transfer.protocol", ("transfer.operator",), "transfer/protocol never imports operator"),
    ("request_network", ("response_network",), "the networks never import each other"),
    ("response_network", ("request_network",), "the networks never import each other"),
]
SERVICE_RULE = (("fastapi", "starlette", "celery"), "services/ hold no FastAPI or Celery")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import in `source`; `from a import b` gives
    both `a` and `a.b` (b may be a submodule). Relative imports are made absolute."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(path: Path, source: str | None = None) -> list[str]:
    module = module_name(path)
    source = path.read_text() if source is None else source
    where = path.relative_to(ROOT)
    found = []
    rules = [(forbidden, why) for subject, forbidden, why in RULES if within(module, subject)]
    if ".services." in f".{module}.":
        rules.append(SERVICE_RULE)
    for line, imported in imports(source, module, is_package=path.name == "__init__.py"):
        for forbidden, why in rules:
            if any(within(imported, f) for f in forbidden):
                found.append(f"{where}:{line} imports {imported} ({why})")
    return sorted(set(found))


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_arrow_points_one_way():
    assert len(sources()) > 100  # the walk found the packages
    problems = [problem for path in sources() for problem in violations(path)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("path", "line", "expected"),
    [
        ("transfer/format/spec.py", "import transfer.operator", "transfer.operator"),
        ("transfer/format/spec.py", "from transfer import protocol", "transfer.protocol"),
        ("transfer/format/reader.py", "from ..operator import carry", "transfer.operator.carry"),
        ("transfer/format/reader.py", "from sqlalchemy import select", "sqlalchemy"),
        (
            "transfer/protocol/acks.py",
            "from transfer.operator.status import x",
            "transfer.operator",
        ),
        ("transfer/operator/cli.py", "import request_network.jobs", "request_network.jobs"),
        ("shared/db.py", "from transfer.format import Limits", "transfer.format"),
        ("shared/db.py", "    from ferry import cli", "ferry"),
        ("request_network/services/auth.py", "from fastapi import Depends", "fastapi"),
        ("response_network/jobs.py", "import request_network.models", "request_network"),
    ],
)
def test_an_arrow_against_the_rules_is_named(path, line, expected):
    """Each rule can fail: one forbidden import added to a real module is reported with the
    file, the line and the import."""
    target = ROOT / path
    source = target.read_text()
    if line.startswith(" "):
        source += "\n\ndef _added():\n" + line + "\n"
    else:
        source += "\n" + line + "\n"
    added = source.count("\n")  # the line number of the added import
    problems = violations(target, source)
    assert problems, f"{line!r} in {path} was not caught"
    assert any(p.startswith(f"{path}:{added} imports {expected}") for p in problems), problems


def test_allowed_arrows_pass():
    """Downward arrows are not reported: operator → protocol → format → shared."""
    allowed = {
        "transfer/operator/status.py": "from transfer.protocol import acks",
        "transfer/protocol/acks.py": "from transfer.format import Limits",
        "transfer/format/spec.py": "from shared.records import STREAMS",
        "request_network/jobs.py": "from transfer.operator.status import network_status",
    }
    for path, line in allowed.items():
        target = ROOT / path
        assert violations(target, target.read_text() + "\n" + line + "\n") == []
