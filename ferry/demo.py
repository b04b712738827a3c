"""`ferry demo`: the whole cycle on embedded defaults, narrated, checked at the end.

SQLite for both networks, the in-process Redis stand-in, Celery tasks run in-process and
osmem-server as the search engine. The code paths are the production ones; only URLs differ.

With `serve`, both networks' APIs (and their admin panels) stay up on 127.0.0.1 after a
successful cycle, with an admin whose password is made for this run, until SIGINT or SIGTERM.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import orjson
import uvicorn
from rich.console import Console

DATA = Path(__file__).parent / "demo_data"
DEMO_PASSWORD = "ferry-demo-pass"  # noqa: S105 - the embedded demo's own sample user
DEMO_ADMIN = "admin"  # the panel's sign-in under `--serve`; its password is made per run
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


def _listen(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: any free port), for uvicorn to serve on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def _serve(app, sock: socket.socket | None = None) -> Iterator[int]:
    """`app` served by uvicorn in a thread on `sock` (a free port if None); yields the port."""
    sock = sock or _listen(0)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise RuntimeError(f"the API on 127.0.0.1:{sock.getsockname()[1]} did not start")
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _step(n: int, text: str) -> None:
    console.print(f"[bold cyan]{n:>2}.[/] {text}")


def _carry(src: Path, dst: Path, what: str) -> None:
    from transfer.operator.carry import carry

    report = carry(src, dst)
    for c in report.copied:
        console.print(f"      carried {c['file']} ({c['bytes']} bytes) → {dst}")
    if not report.ok or not report.copied:
        raise RuntimeError(f"nothing carried for {what}: {report.refused}")


def run_demo(
    workdir: str, *, serve: bool = False, request_port: int = 8000, response_port: int = 8001
) -> int:
    """The cycle, 0 if the expected hits came back; with `serve`, then both APIs and their
    panels on 127.0.0.1 until SIGINT or SIGTERM (0 once both have stopped)."""
    import logging

    from osmem_server import OsmemServer

    logging.getLogger().setLevel(logging.WARNING)  # the narration is the demo's output
    with ExitStack() as stack:
        sockets = {}
        if serve:  # a port in use is reported before the cycle, not after it
            for net, port in (("request", request_port), ("response", response_port)):
                try:
                    sockets[net] = stack.enter_context(_listen(port))
                except OSError as exc:
                    console.print(
                        f"[bold red]cannot serve[/] the {net} network on "
                        f"127.0.0.1:{port}: {exc.strerror or exc}"
                    )
                    return 1
        work = Path(workdir).resolve()
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.monotonic()
        admin_password = secrets.token_urlsafe(12) if serve else None
        with OsmemServer.start(japanese=False) as search:
            os.environ.update(_env(work, search.url))
            try:
                code = _cycle(work, started, admin_password)
            except Exception as exc:  # noqa: BLE001 - the demo reports any failure plainly
                console.print(f"[bold red]demo failed:[/] {exc}")
                return 1
            if code or not serve:
                return code
            try:
                return _serve_until_stopped(sockets, admin_password)
            except Exception as exc:  # noqa: BLE001 - reported plainly, as the cycle's
                console.print(f"[bold red]cannot serve:[/] {exc}")
                return 1


def _cycle(work: Path, started: float, admin_password: str | None = None) -> int:
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
    from transfer.protocol.config import make_transfer_dirs

    rq, rs = rq_settings(), rs_settings()
    _step(1, "Setting up both networks: keys, databases, sample index")
    for net in ("request", "response"):
        generate_keypair(work / "keys" / net, net)
    for settings in (rq, rs):  # as every process of a real deployment does at start
        make_transfer_dirs(settings)
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
        if admin_password is not None:  # the panels' sign-in, for `--serve`
            create_user(
                session=s,
                username=DEMO_ADMIN,
                password=admin_password,
                profile_type="articles",
                role="admin",
                rounds=rs.bcrypt_rounds,
                actor="demo",
            )
    backend = backend_for(rs)
    loaded = backend.bulk_load("articles", read_jsonl(DATA / "articles.jsonl"))
    made = "users alice and admin" if admin_password is not None else "user alice"
    console.print(f"      {loaded} documents indexed in 'articles'; {made} created")

    _step(2, "Response network exports users and profile types (it is their authority)")
    out = rs_tasks.export.delay().get()
    for b in out["batches"]:
        console.print(f"      wrote {Path(b['file']).name}  sha256={b['sha256'][:16]}…")
    _carry(rs.outbox, rq.inbox, "identity")
    result = rq_tasks.import_batches.delay().get()
    console.print(f"      request network imported {len(result['files'])} identity batches")

    with _serve(create_app(rq)) as port:
        base = f"http://127.0.0.1:{port}"
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


def _serve_until_stopped(sockets: dict[str, socket.socket], admin_password: str) -> int:
    """Both networks' APIs with their panels on `sockets` until SIGINT or SIGTERM."""
    from request_network.app import create_app as request_app
    from request_network.settings import get_settings as rq_settings
    from response_network.app import create_app as response_app
    from response_network.settings import get_settings as rs_settings

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with (
            _serve(request_app(rq_settings()), sockets["request"]) as rq_port,
            _serve(response_app(rs_settings()), sockets["response"]) as rs_port,
        ):
            console.print("\n[bold]Both networks are up[/] (127.0.0.1 only; Ctrl-C stops them):")
            for net, port in (("request ", rq_port), ("response", rs_port)):
                base = f"http://127.0.0.1:{port}"
                console.print(
                    f"  {net} network   API {base}   docs {base}/docs   panel {base}/admin"
                )
            console.print(f"  panel login  {DEMO_ADMIN} / {admin_password}  (made for this run)")
            console.print(f"  API user     alice / {DEMO_PASSWORD}  (the demo's sample user)")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
            console.print("stopping…")
        console.print("stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
