"""Standard logging, one format for both networks. Secrets are never passed to a logger.

The level is each network's `log_level` setting (FERRY_<NET>_LOG_LEVEL); FERRY_LOG_LEVEL
is its default for both networks, and the level of `ferry` before any settings are read.
A process's SIGHUP applies a new level at once (`set_level`, `shared.reload`).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def default_level() -> str:
    """FERRY_LOG_LEVEL, else INFO: the default of both networks' `log_level`."""
    return os.environ.get("FERRY_LOG_LEVEL", "INFO").upper()


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(level=(level or default_level()).upper(), format=FORMAT)


def set_level(level: str) -> None:
    """The level of the root logger and of `ferry.*` (uvicorn's own loggers keep theirs)."""
    for name in ("", "ferry"):
        logging.getLogger(name).setLevel(level.upper())


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus the root logger in the house format at `level`.

    uvicorn applies it in every API process, including each worker process of
    `serve --workers N`, which would otherwise have no handler for `ferry.*`.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["ferry"] = {"format": FORMAT}
    config["handlers"]["ferry"] = {
        "class": "logging.StreamHandler",
        "formatter": "ferry",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["ferry"], "level": level.upper()}
    config["loggers"]["ferry"] = {"level": level.upper()}
    return config
