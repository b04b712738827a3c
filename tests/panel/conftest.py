"""Fixtures of the panel tests: each network's API with its panel, on the test PostgreSQL
database (emptied before and after each test) and the test Redis; the response network's
fixtures are named `r…`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from request_network.settings import RequestSettings
from response_network.settings import ResponseSettings
from tests.panel.browser_support import chromium, signed_in
from tests.panel.panel_support import fresh, https_client, make_settings, panel_app, staff
from tests.panel.response_support import (
    ResponseSeed,
    empty_response_db,
    make_response_settings,
    response_app,
)
from tests.request_network.request_api_helpers import Seed, truncate_request_db


@pytest.fixture
def db(pg_urls) -> Iterator[str]:
    yield from fresh(pg_urls["request"], truncate_request_db)


@pytest.fixture
def settings(db, tmp_path) -> RequestSettings:
    return make_settings(db, tmp_path / "transfer")


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    yield from https_client(panel_app(settings))


@pytest.fixture
def seed(db) -> Seed:
    return Seed(db)


@pytest.fixture
def people(seed) -> dict[str, str]:
    return staff(seed, "alice")


# The response network's panel ------------------------------------------------------------


@pytest.fixture
def rdb(pg_urls) -> Iterator[str]:
    yield from fresh(pg_urls["response"], empty_response_db)


@pytest.fixture
def rsettings(rdb, tmp_path) -> ResponseSettings:
    return make_response_settings(rdb, tmp_path / "transfer")


@pytest.fixture
def rclient(rsettings) -> Iterator[TestClient]:
    yield from https_client(response_app(rsettings))


@pytest.fixture
def rseed(rdb) -> ResponseSeed:
    return ResponseSeed(rdb)


@pytest.fixture
def rpeople(rseed) -> dict[str, str]:
    return staff(rseed, "ursula")


# -- the browser tests' own (each module brings its `world`: a server and what it holds) -----


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module (`browser_support.chromium`: NOT RUN without it, fails in CI)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def as_admin(browser, world):
    """A page signed in as the module's admin, watched for console errors and failed requests."""
    with signed_in(browser, world["base"], "root") as watched:
        yield watched
