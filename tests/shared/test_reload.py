"""Reloading local settings (shared/reload.py): what a re-read applies, what it holds for a
restart (named, never valued), and that a bad value keeps the settings in force.

Settings are read as a process reads them: from the environment and the env file named by
FERRY_<NET>_ENV_FILE, which each test writes. The real processes (serve, worker, beat) are
in test_reload_processes.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import typing
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from request_network.settings import RequestSettings
from response_network.settings import ResponseSettings
from shared.reload import Reload, reloading_on_sighup, reread, restart_if_valid
from shared.settings import FerrySettings, SettingsLoader

SECRET = "a-new-jwt-secret-nobody-may-read-0123456789"
PEPPER = "a-new-pepper-nobody-may-read-0123456789abcd"


@pytest.fixture(autouse=True)
def _levels() -> typing.Iterator[None]:
    """A reload sets the root and `ferry` levels: put them back after each test."""
    saved = {name: logging.getLogger(name).level for name in ("", "ferry")}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Writes the request network's env file (demo mode, SQLite) with extra lines."""
    for key in [k for k in os.environ if k.startswith("FERRY_")]:
        monkeypatch.delenv(key)
    path = tmp_path / "request.env"
    monkeypatch.setenv("FERRY_REQUEST_ENV_FILE", str(path))

    def write(**values: str) -> Path:
        base = {
            "MODE": "demo",
            "DATABASE_URL": f"sqlite:///{tmp_path}/request.db",
            "REDIS_URL": "fakeredis://",
            "TRANSFER_DIR": str(tmp_path / "transfer"),
        }
        lines = [f"FERRY_REQUEST_{k.upper()}={v}" for k, v in (base | values).items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    write()
    return write


def _text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_live_keys_and_the_log_level_apply_at_once(env_file, caplog) -> None:
    env_file(log_level="INFO", page_size_max="100", login_max_failures="5")
    current = RequestSettings()
    env_file(log_level="debug", page_size_max="50", login_max_failures="3")
    with caplog.at_level(logging.DEBUG, logger="ferry.reload"):
        result = reread(current)
    assert set(result.applied) == {"log_level", "page_size_max", "login_max_failures"}
    assert result.held == () and result.refused == ()
    new = result.settings
    assert (new.log_level, new.page_size_max, new.login_max_failures) == ("DEBUG", 50, 3)
    assert current.page_size_max == 100  # the old object is untouched: requests in flight
    assert logging.getLogger().level == logging.DEBUG
    assert logging.getLogger("ferry").level == logging.DEBUG
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert any("now in force" in r.getMessage() for r in infos)


def test_a_reread_with_nothing_changed_keeps_the_same_settings(env_file, caplog) -> None:
    current = RequestSettings()
    with caplog.at_level(logging.INFO, logger="ferry.reload"):
        result = reread(current)
    assert result == Reload(current)
    assert "nothing changed" in _text(caplog)


def test_secrets_urls_and_directories_are_held_and_named_never_valued(
    env_file, tmp_path, caplog
) -> None:
    current = RequestSettings()
    env_file(
        page_size_max="42",
        jwt_secret=SECRET,
        api_key_pepper=PEPPER,
        database_url="sqlite:////elsewhere/secret-db-name.db",
        transfer_dir=str(tmp_path / "moved"),
        api_concurrency="1",
    )
    with caplog.at_level(logging.DEBUG, logger="ferry.reload"):
        result = reread(current)
    assert result.applied == ("page_size_max",)
    held = {"jwt_secret", "api_key_pepper", "database_url", "transfer_dir", "api_concurrency"}
    assert set(result.held) == held
    new = result.settings
    assert new.page_size_max == 42
    assert new.jwt_secret == current.jwt_secret and new.api_key_pepper == current.api_key_pepper
    assert (new.database_url, new.transfer_dir) == (current.database_url, current.transfer_dir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "restart" in warnings[0]
    assert all(key in warnings[0] for key in held)
    logged = _text(caplog)
    for value in (SECRET, PEPPER, "secret-db-name", "moved"):
        assert value not in logged


def test_a_bad_value_keeps_the_settings_in_force_and_names_the_key(env_file, caplog) -> None:
    env_file(log_level="INFO", page_size_max="100")
    current = RequestSettings()
    env_file(log_level="LOUD", page_size_max="50")
    with caplog.at_level(logging.DEBUG, logger="ferry.reload"):
        result = reread(current)
    assert result.settings is current and result.applied == ()
    assert result.refused == ("log_level",)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "log_level" in errors[0] and "LOUD" not in errors[0]
    assert logging.getLogger("ferry").level != logging.DEBUG


def test_a_secret_refused_in_production_is_never_echoed(env_file, caplog) -> None:
    env_file(mode="production", jwt_secret="x" * 40, api_key_pepper="p" * 40)
    current = RequestSettings()
    env_file(mode="production", jwt_secret="short-secret-value", api_key_pepper="p" * 40)
    with caplog.at_level(logging.DEBUG, logger="ferry.reload"):
        result = reread(current)
    assert result.settings is current and result.refused
    assert "jwt_secret" in _text(caplog)
    assert "short-secret-value" not in _text(caplog)


def test_a_value_that_cannot_be_parsed_is_refused_by_its_key(env_file, caplog) -> None:
    current = RequestSettings()
    env_file(beat_seconds="{not json")
    with caplog.at_level(logging.ERROR, logger="ferry.reload"):
        result = reread(current)
    assert result.settings is current and result.refused == ("beat_seconds",)


def test_an_env_file_that_is_gone_is_refused(env_file, tmp_path, caplog, monkeypatch) -> None:
    current = RequestSettings()
    monkeypatch.setenv("FERRY_REQUEST_ENV_FILE", str(tmp_path / "gone.env"))
    with caplog.at_level(logging.ERROR, logger="ferry.reload"):
        result = reread(current)
    assert result.settings is current and result.refused
    assert "FERRY_REQUEST_ENV_FILE" in _text(caplog)


def test_the_environment_wins_over_the_env_file(env_file, monkeypatch) -> None:
    env_file(page_size_max="50", log_level="DEBUG")
    monkeypatch.setenv("FERRY_REQUEST_PAGE_SIZE_MAX", "30")
    settings = RequestSettings()
    assert (settings.page_size_max, settings.log_level) == (30, "DEBUG")


def test_ferry_log_level_is_the_default_level_of_both_networks(monkeypatch, tmp_path) -> None:
    for key in [k for k in os.environ if k.startswith("FERRY_")]:
        monkeypatch.delenv(key)
    assert RequestSettings(mode="demo").log_level == "INFO"
    monkeypatch.setenv("FERRY_LOG_LEVEL", "warning")
    assert RequestSettings(mode="demo").log_level == "WARNING"
    assert ResponseSettings(mode="demo").log_level == "WARNING"
    monkeypatch.setenv("FERRY_RESPONSE_LOG_LEVEL", "ERROR")
    assert ResponseSettings(mode="demo").log_level == "ERROR"


def _types(annotation: object) -> set[object]:
    found = {annotation}
    for arg in typing.get_args(annotation):
        found |= _types(arg)
    return found


@pytest.mark.parametrize("cls", [RequestSettings, ResponseSettings])
def test_no_live_key_is_a_secret_a_url_a_path_or_an_identity(cls: type[FerrySettings]) -> None:
    assert set(cls.model_fields) >= cls.LIVE
    for key in cls.LIVE:
        kinds = _types(cls.model_fields[key].annotation)
        assert not kinds & {SecretStr, Path}, key
        assert not key.endswith(("_url", "_dir", "_key", "_keys", "_secret", "_pepper")), key
    fixed = {"mode", "network_id", "peer_network_id", "celery_eager", "beat_seconds", "api_docs"}
    fixed |= {"api_concurrency", "api_queue", "api_queue_wait_s", "api_retry_after_s"}
    fixed |= {"max_body_bytes", "jwt_issuer", "jwt_audience"}  # built in at start, or tokens'
    assert not cls.LIVE & fixed


def test_sighup_swaps_the_apps_settings_and_the_process_loader(env_file) -> None:
    env_file(page_size_max="100")
    loader = SettingsLoader(RequestSettings)
    app = FastAPI()
    app.state.settings = loader()

    async def run() -> RequestSettings:
        async with reloading_on_sighup(app, loader.replace):
            assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN)
            env_file(page_size_max="25")
            os.kill(os.getpid(), signal.SIGHUP)
            deadline = time.monotonic() + 10  # bounds a missed signal only
            while app.state.settings.page_size_max != 25 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return app.state.settings

    settings = asyncio.run(run())
    assert settings.page_size_max == 25
    assert loader() is settings
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # removed with the lifespan


def test_a_restart_goes_ahead_only_when_the_new_settings_validate(env_file, caplog) -> None:
    current = RequestSettings()
    restarts: list[str] = []
    env_file(log_level="LOUD")
    with caplog.at_level(logging.INFO, logger="ferry.reload"):
        assert restart_if_valid(current, lambda: restarts.append("restart")) is False
        assert restarts == []
        env_file(log_level="DEBUG", jwt_secret=SECRET)
        assert restart_if_valid(current, lambda: restarts.append("restart")) is True
    assert restarts == ["restart"]
    logged = _text(caplog)
    assert "log_level" in logged and "jwt_secret" in logged and SECRET not in logged


def test_the_loader_reads_once_until_replaced_or_cleared(env_file) -> None:
    loader = SettingsLoader(RequestSettings)
    first = loader()
    assert loader() is first
    other = first.model_copy(update={"page_size_max": 7})
    loader.replace(other)
    assert loader() is other
    loader.cache_clear()
    assert loader() is not other and loader().page_size_max == first.page_size_max
