"""Every beat entry of each network names a task that network's Celery app registers."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["request_network.tasks", "response_network.tasks"])
def test_beat_entries_name_registered_tasks(module, monkeypatch):
    monkeypatch.setenv("FERRY_REQUEST_MODE", "demo")
    monkeypatch.setenv("FERRY_RESPONSE_MODE", "demo")
    tasks = importlib.import_module(module)
    schedule = tasks.celery.conf.beat_schedule
    assert schedule, "a network without a beat schedule would never move batches"
    registered = set(tasks.celery.tasks)
    for entry, spec in schedule.items():
        assert spec["task"] in registered, f"{module}: beat entry {entry} names {spec['task']}"
        assert spec["task"].split(".")[0] == module.split("_")[0], "tasks stay on their network"
