"""`ferry demo`: the whole cycle on embedded defaults, narrated, checked at the end.

SQLite for both networks, the in-process Redis stand-in, Celery tasks run in-process and
osmem-server as the search engine. The code paths are the production ones; only URLs differ.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import uvicorn
from rich.console import Console

DATA = Path(__file__).parent / "demo_data"
DEMO_PASSWORD = "ferry-demo-pass"  # noqa: S105 - the embedded demo's own sample user
QUERY = {
    "query": {
        "all": [
            {"match": {"field": "title", "value": "ferry"}},
            {"range": {"field": "year", "gte": 1990}},
        ]
    },
    "size": 50,
    "sort": [{"field": "year", "order": "asc"}],
}
console = Console(highlight=False, soft_wrap=True)


def expected_ids() -> set[str]:
    """What the demo query must find, worked out from the sample file itself."""
    found = set()
    for line in (DATA / "articles.jsonl").read_bytes().splitlines():
        doc = orjson.loads(line)
        words = re.findall(r"[a-z0-9]+", doc["title"].lower())
        if "ferry" in words and doc["year"] >= 1990:
            found.add(doc["id"])
    return found


def _env(work: Path, search_url: str) -> dict[str, str]:
    env = {}
    for net, peer in (("request", "response"), ("response", "request")):
        p = f"FERRY_{net.upper()}_"
        env |= {
            p + "MODE": "demo",
            p + "DATABASE_URL": f"sqlite:///{work}/{net}.db",
            p + "REDIS_URL": "fakeredis://",
            p + "BROKER_URL": "memory://",
            p + "CELERY_EAGER": "true",
            p + "TRANSFER_DIR": str(work / net / "transfer"),
            p + "SIGNING_KEY": str(work / "keys" / net / f"{net}.ed25519.pem"),
            p + "PEER_PUBLIC_KEYS": orjson.dumps([str(work / "keys" / peer)]).decode(),
            p + "BCRYPT_ROUNDS": "10",
        }
    env["FERRY_RESPONSE_ELASTICSEARCH_URL"] = search_url
    env["FERRY_RESPONSE_COMPAT_HEADERS"] = "false"
    return env


@contextmanager
def _serve(app, port_holder: list[int]):
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port_holder.append(server.servers[0].sockets[0].getsockname()[1])
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(5)


def _step(n: int, text: str) -> None:
    console.print(f"[bold cyan]{n:>2}.[/] {text}")


def _carry(src: Path, dst: Path, what: str) -> None:
    from transfer.operator.carry import carry

    report = carry(src, dst)
    for c in report.copied:
        console.print(f"      carried {c['file']} ({c['bytes']} bytes) → {dst}")
    if not report.ok or not report.copied:
        raise RuntimeError(f"nothing carried for {what}: {report.refused}")


def run_demo(workdir: str) -> int:
    import logging

    from osmem_server import OsmemServer

    logging.getLogger().setLevel(logging.WARNING)  # the narration is the demo's output
    work = Path(workdir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    with OsmemServer.start(japanese=False) as search:
        os.environ.update(_env(work, search.url))
        try:
            return _cycle(work, started)
        except Exception as exc:  # noqa: BLE001 - the demo reports any failure plainly
            console.print(f"[bold red]demo failed:[/] {exc}")
            return 1


def _cycle(work: Path, started: float) -> int:
    from request_network import tasks as rq_tasks
    from request_network.app import create_app
    from request_network.settings import get_settings as rq_settings
    from response_network import tasks as rs_tasks
    from response_network.jobs import backend_for
    from response_network.services.documents import read_jsonl
    from response_network.services.identity import create_user, load_profile_types
    from response_network.settings import get_settings as rs_settings
    from shared.db import transaction
    from shared.migrate import upgrade
    from transfer.format.keys import generate_keypair

    rq, rs = rq_settings(), rs_settings()
    _step(1, "Setting up both networks: keys, databases, sample index")
    for net in ("request", "response"):
        generate_keypair(work / "keys" / net, net)
    upgrade("request", rq.database_url)
    upgrade("response", rs.database_url)
    with transaction(rs.database_url) as s:
        load_profile_types(DATA / "profile_types.json", session=s, actor="demo")
        create_user(
            session=s,
            username="alice",
            password=DEMO_PASSWORD,
            profile_type="articles",
            rounds=rs.bcrypt_rounds,
            actor="demo",
        )
    backend = backend_for(rs)
    loaded = backend.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
    console.print(f"      {loaded} documents indexed in 'articles'; user alice created")

    _step(2, "Response network exports users and profile types (it is their authority)")
    out = rs_tasks.export.delay().get()
    for b in out["batches"]:
        console.print(f"      wrote {Path(b['file']).name}  sha256={b['sha256'][:16]}…")
    _carry(rs.outbox, rq.inbox, "identity")
    result = rq_tasks.import_batches.delay().get()
    console.print(f"      request network imported {len(result['files'])} identity batches")

    port: list[int] = []
    with _serve(create_app(rq), port):
        base = f"http://127.0.0.1:{port[0]}"
        with httpx.Client(base_url=base, timeout=10) as http:
            token = (
                http.post(
                    "/api/v1/auth/login", data={"username": "alice", "password": DEMO_PASSWORD}
                )
                .raise_for_status()
                .json()
            )
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            reply = http.post(
                "/api/v1/requests", headers=auth, json={"profile_type": "articles", "query": QUERY}
            )
            reply.raise_for_status()
            rid = reply.json()["id"]
            _step(
                3,
                f"alice logged in and submitted request {rid} → {reply.status_code} "
                f"{reply.json()['status']}",
            )

            exported = rq_tasks.export_requests.delay().get()
            batch = exported["batches"][0]
            _step(4, f"Request batch written: {batch['file']}")
            console.print(f"      sha256 {batch['sha256']}  ({batch['records']} records)")
            _step(5, "Operator carries it to the response network")
            _carry(rq.outbox, rs.inbox, "requests")
            imported = rs_tasks.import_requests.delay().get()["files"]
            _step(
                6,
                f"Imported on the response network: {imported[0]['status']}, "
                f"{imported[0]['records']} request(s) queued",
            )
            ran = rs_tasks.execute.delay().get()
            _step(
                7, f"Executed against the search engine: {ran['done']} done, {ran['failed']} failed"
            )
            results = rs_tasks.export.delay().get()
            _step(8, f"Results exported: {Path(results['batches'][-1]['file']).name}")
            _step(9, "Operator carries the results back")
            _carry(rs.outbox, rq.inbox, "results")
            back = rq_tasks.import_batches.delay().get()["files"]
            _step(10, f"Imported on the request network: {back[0]['status']}")
            status = http.get(f"/api/v1/requests/{rid}", headers=auth).json()["status"]
            response = http.get(f"/api/v1/requests/{rid}/response", headers=auth)
            response.raise_for_status()
            body = response.json()

    got = {h["id"] for h in body["hits"]}
    want = expected_ids()
    _step(11, f"alice reads the response: request {status}, total={body['total']}, {len(got)} hits")
    for hit in body["hits"][:5]:
        src = hit["source"]
        console.print(f"      {hit['id']}  {src['year']}  {src['title']}")
    elapsed = time.monotonic() - started
    if got == want and body["total"] == len(want) and status == "COMPLETED":
        console.print(
            f"[bold green]demo ok[/]: the {len(want)} expected hits came back "
            f"across the gap in {elapsed:.1f} s"
        )
        return 0
    console.print(f"[bold red]demo failed[/]: expected {sorted(want)}, got {sorted(got)}")
    return 1
