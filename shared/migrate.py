"""Run a network's Alembic environment programmatically (`ferry <network> db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[1]


def alembic_config(network: str, url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"), ini_section=network)
    cfg.set_main_option("script_location", str(ROOT / "migrations" / network))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(network: str, url: str, revision: str = "head") -> None:
    _ensure_sqlite_dir(url)
    command.upgrade(alembic_config(network, url), revision)


def downgrade(network: str, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(network, url), revision)


def _ensure_sqlite_dir(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
