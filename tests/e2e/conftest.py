"""Both networks as a real deployment: separate processes, set up through the `ferry` CLI.

The `deployment` fixture (one for the whole e2e package) gives each network its own PostgreSQL
database, Redis database, transfer directory, signing key, Celery worker and settings
(production mode), starts the request API with uvicorn, sets up users, profile types and
the search index on the response network with the real CLI, and carries the first identity
export across. Tests then call tasks through a plain Celery client (no beat), carry batches
with `ferry transfer carry` and talk to the API over HTTP.

The request network's email and webhooks go to a mail server and a webhook receiver in the
test process (the `channels` fixture), started first so that its settings can name their
ports.

When a test fails, the tail of every subprocess log is attached to its report.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from e2e_deployment import (
    ADMINS,
    DATABASE,
    DEMO_DATA,
    NETWORKS,
    REDIS_DB,
    ROOT,
    USERS,
    Channels,
    Deployment,
    Network,
    celery_client,
    network_env,
    redis_url_for,
    wait_for_api,
    wait_for_worker,
)
from e2e_support import Logs, Service, base_environment, free_port, run_parallel

_LOGS = pytest.StashKey[Logs]()


def _root_conftest(config: pytest.Config) -> Any:
    """`tests/conftest.py` as pytest loaded it (importing `conftest` by name is ambiguous)."""
    wanted = (ROOT / "tests" / "conftest.py").resolve()
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == wanted:
            return plugin
    raise RuntimeError(f"{wanted} is not loaded as a conftest")


@pytest.fixture(scope="package")
def channels() -> Iterator[Channels]:
    """The mail server and webhook receiver the request network's notifications go to."""
    started = Channels.started()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="package")
def deployment(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    osmem_server: Any,
    channels: Channels,
) -> Iterator[Deployment]:
    root = _root_conftest(request.config)
    base = tmp_path_factory.mktemp("ferry-e2e")
    logs = Logs(base / "logs")
    request.config.stash[_LOGS] = logs
    keys_root = base / "keys"
    search = osmem_server.clone()  # the frozen base is shared; this clone is ours
    networks: dict[str, Network] = {}
    dep = Deployment(
        base=base,
        logs=logs,
        networks=networks,
        api_url="",
        passwords={u: secrets.token_urlsafe(18) for u in (*USERS, *ADMINS)},
        channels=channels,
    )
    try:
        for net in NETWORKS:
            database_url = root._fresh_database(DATABASE[net])
            redis_url = redis_url_for(root.REDIS_URL, REDIS_DB[net])
            with redis.Redis.from_url(redis_url) as client:
                client.flushdb()
            env = network_env(
                net, base=base, keys_root=keys_root, database_url=database_url, redis_url=redis_url
            )
            if net == "request":
                env |= channels.env(net)
            networks[net] = Network(
                net,
                env,
                base / net / "transfer",
                keys_root / net,
                redis_url,
                celery_client(net, redis_url),
            )
        rq, rs = dep.request, dep.response
        rs.env |= {
            "FERRY_RESPONSE_ELASTICSEARCH_URL": search.url,
            "FERRY_RESPONSE_COMPAT_HEADERS": "false",
        }

        run_parallel(
            [
                (
                    ["keys", "generate", "--network", net, "--dir", str(keys_root / net)],
                    base_environment(),
                )
                for net in NETWORKS
            ],
            logs=logs,
            cwd=base,
        )
        run_parallel(
            [([net, "db", "upgrade"], networks[net].env) for net in NETWORKS], logs=logs, cwd=base
        )

        port, response_port = free_port(), free_port()
        dep.api_url = f"http://127.0.0.1:{port}"
        dep.response_api_url = f"http://127.0.0.1:{response_port}"
        for name, args, env in (
            ("request-worker", ["request", "worker", "--concurrency", "2"], rq.env),
            ("response-worker", ["response", "worker", "--concurrency", "2"], rs.env),
            ("request-api", ["request", "serve", "--port", str(port)], rq.env),
            ("response-api", ["response", "serve", "--port", str(response_port)], rs.env),
        ):
            dep.services.append(Service(name, args, env, logs, base))

        # Identity and data on the response network, its authority, while the services start.
        dep.cli("response", "profile-types", "load", DEMO_DATA / "profile_types.json", env=rs.env)

        def create_user(user: str, role: str = "user") -> tuple[list[str], dict[str, str]]:
            args = ["response", "users", "create", "--username", user, "--profile-type", "articles"]
            args += ["--role", role]
            return args, rs.env | {"FERRY_NEW_USER_PASSWORD": dep.passwords[user]}

        load_index = ["response", "index", "load", str(DEMO_DATA / "articles.jsonl")]
        run_parallel(
            [
                *(create_user(u) for u in USERS),
                *(create_user(u, "admin") for u in ADMINS),
                ([*load_index, "--index", "articles"], rs.env),
            ],
            logs=logs,
            cwd=base,
        )

        for network in (rq, rs):
            wait_for_worker(dep, network)
        wait_for_api(dep)

        # First contact: users and profile types cross from the response network.
        profiles = dep.run_task("response", "response.profile_types_exporter")
        users = dep.run_task("response", "response.users_exporter")
        streams = [b["stream"] for b in (*profiles["batches"], *users["batches"])]
        assert streams == ["profile_types", "users"], (profiles, users)
        carried = dep.carry(rs.outbox, rq.inbox)
        assert len(carried["copied"]) == 2, carried
        assert dep.run_task("request", "request.import_results")["files"] == []
        imported = dep.run_task("request", "request.users_importer")
        assert [f["status"] for f in imported["files"]] == ["imported", "imported"], imported
        assert sum(f["records"] for f in imported["files"]) == 1 + len(USERS) + len(ADMINS), (
            imported
        )

        yield dep
    finally:
        for service in reversed(dep.services):
            service.stop()
        for network in networks.values():
            network.celery.close()
        search.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    report = yield
    logs = item.config.stash.get(_LOGS, None)
    if report.failed and logs is not None and item.get_closest_marker("e2e"):
        report.sections.append(("ferry e2e: subprocess logs (tails)", logs.report()))
    return report
