"""Every beat entry of each network names a task that network's Celery app registers; the
entries are the names the system's users know (DESIGN.md §8); cadences come from settings;
former task names stay registered for one release."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from pydantic import ValidationError

from request_network import schedule as request_schedule
from request_network.settings import RequestSettings
from response_network import schedule as response_schedule
from response_network.settings import ResponseSettings

NAMED = {
    "request_network.tasks": {
        "export_requests",
        "import_results",
        "users_importer",
        "settings_importer",
        "cache_maintenance",
        "system_monitoring",
    },
    "response_network.tasks": {
        "import_requests",
        "query_executor",
        "export_results",
        "users_exporter",
        "profile_types_exporter",
        "settings_exporter",
        "password_sync",
        "cache_maintenance",
        "system_monitoring",
    },
}
SCHEDULES = {"request_network.tasks": request_schedule, "response_network.tasks": response_schedule}


@pytest.fixture
def demo_mode(monkeypatch):
    monkeypatch.setenv("FERRY_REQUEST_MODE", "demo")
    monkeypatch.setenv("FERRY_RESPONSE_MODE", "demo")


@pytest.mark.parametrize("module", sorted(NAMED))
def test_beat_entries_name_registered_tasks(module, demo_mode):
    tasks = importlib.import_module(module)
    schedule = tasks.celery.conf.beat_schedule
    assert schedule, "a network without a beat schedule would never move batches"
    registered = set(tasks.celery.tasks)
    for entry, spec in schedule.items():
        assert spec["task"] in registered, f"{module}: beat entry {entry} names {spec['task']}"
        assert spec["task"].split(".")[0] == module.split("_")[0], "tasks stay on their network"
        assert spec["task"].split(".", 1)[1] == entry, "an entry is named as its task"
    assert NAMED[module] <= set(schedule), NAMED[module] - set(schedule)
    for former in SCHEDULES[module].ALIASES:
        assert former in registered, f"{module}: former task name {former} is not registered"
        assert former not in {spec["task"] for spec in schedule.values()}


def test_cadences_default_and_come_from_settings():
    beat = request_schedule.beat()
    assert beat["export_requests"]["schedule"] == timedelta(seconds=30)
    assert beat["cache_maintenance"]["schedule"] == timedelta(hours=1)
    assert response_schedule.beat()["query_executor"]["schedule"] == timedelta(minutes=1)
    assert response_schedule.beat()["users_exporter"]["schedule"] == timedelta(minutes=2)

    settings = RequestSettings(mode="demo", beat_seconds={"export_requests": 5})
    faster = request_schedule.beat(settings.beat_seconds)
    assert faster["export_requests"]["schedule"] == timedelta(seconds=5)
    assert faster["import_results"]["schedule"] == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("cls", "seconds", "named"),
    [
        (RequestSettings, {"export_results": 5}, "export_results"),  # the other network's
        (ResponseSettings, {"export-results": 5}, "export-results"),
        (ResponseSettings, {"query_executor": 0}, "query_executor"),
        (RequestSettings, {"export_requests": -1}, "export_requests"),
    ],
)
def test_a_bad_cadence_is_refused_naming_the_entry(cls, seconds, named):
    with pytest.raises(ValidationError) as refused:
        cls(mode="demo", beat_seconds=seconds)
    assert named in str(refused.value)


def test_cadences_from_the_environment(monkeypatch):
    monkeypatch.setenv("FERRY_RESPONSE_BEAT_SECONDS", '{"import_requests": 10}')
    settings = ResponseSettings(mode="demo")
    assert settings.beat_seconds == {"import_requests": 10}
    beat = response_schedule.beat(settings.beat_seconds)
    assert beat["import_requests"]["schedule"] == timedelta(seconds=10)
