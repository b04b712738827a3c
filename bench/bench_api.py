"""The request API under load, against a floor app, in one run. Writes docs/PERFORMANCE.md.

    uv run python bench/bench_api.py                      # 1, 16, 64 and 256 in flight
    uv run python bench/bench_api.py --profile profile.txt  # + py-spy of submit at 16

Starts the request API as production would (`ferry request serve --workers N`, real
PostgreSQL and Redis), seeds a user with an API key and limits nothing reaches, and drives
it from a separate process (`--drive`, aiohttp) with bounded concurrency: submit,
status by id, own list, response read. Then response reads of 1 KB, 100 KB and 1 MB
(`--read-points`): cached (warmed first, every read must be `X-Cache: HIT`) and uncached
(a second server with `FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES=0`, every read a `MISS`).
Then the floor (bench/floor_app.py: a pydantic body, one Redis INCR, one INSERT; a read is
one SELECT by id; a sized read is one SELECT of the stored JSON text, or one Redis GET of
its bytes) under the same uvicorn settings and pool, at the same points. Each point: req/s,
p50, p95, p99 and errors. The load generator shares the machine's cores: compare only
within one run. bench/bench_cache.py measures the sized reads in more detail (304s, p99).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from perf_doc import cpu_model, write_section

from shared.network_cli import SERVE_HTTP

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MARK = "<!-- bench_api -->"
PG = os.environ.get(
    "FERRY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("FERRY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
DB_NAME = "ferry_bench_api"
QUERY = {"query": {"match": {"field": "title", "value": "harbour"}}, "size": 5}
OPS = ("submit", "status", "list", "response")
FLOOR_OPS = {"submit": "submit", "status": "status", "list": "status", "response": "status"}
SEEDED = 200  # requests with a response, read by status and response
SIZES = {"1 KB": 1_000, "100 KB": 100_000, "1 MB": 1_000_000}  # sized response reads
PER_SIZE = 4  # requests per size, read in turn
FLOOR_BLOB = "floor:resp:"  # the floor's copy of a sized response in Redis


# --- set-up ------------------------------------------------------------------------------


def fresh_database(name: str = DB_NAME) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG).set(database=name).render_as_string(hide_password=False)


def server_env(url: str, redis_url: str, scratch: Path) -> dict[str, str]:
    """The environment of `ferry request serve` (and of the floor) on the bench's database."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")} | {
        "FERRY_REQUEST_MODE": "production",
        "FERRY_REQUEST_DATABASE_URL": url,
        "FERRY_REQUEST_REDIS_URL": redis_url,
        "FERRY_REQUEST_JWT_SECRET": "bench-jwt-secret-0123456789abcdef0123456789",
        "FERRY_REQUEST_API_KEY_PEPPER": "bench-pepper-0123456789abcdef0123456789",
        "FERRY_REQUEST_TRANSFER_DIR": str(scratch / "transfer"),
        "FERRY_LOG_LEVEL": "WARNING",
        "FLOOR_DATABASE_URL": url,
        "FLOOR_REDIS_URL": redis_url,
    }


def hits_for(nbytes: int, tag: str) -> list[dict]:
    """Search hits whose JSON is about `nbytes` long (a response's body adds ~250 bytes)."""
    text = ("the ferry crosses the gap with answers in signed batches every hour " * 20)[:900]
    hits, size = [], 0
    budget = max(nbytes - 250, 100)
    while size < budget:
        n = len(hits)
        source = {"title": f"harbour {n}", "year": 2000 + n % 25, "body": text[: budget - size]}
        hit = {"_index": "articles", "_id": f"{tag}-{n}", "_score": 1.0, "_source": source}
        hits.append(hit)
        size += len(orjson.dumps(hit)) + 1
    return hits


def seed(
    url: str, env: dict[str, str], *, small: int = SEEDED, per_size: int = PER_SIZE
) -> tuple[str, list[str], dict[str, list[str]]]:
    """A profile type and user with limits nothing reaches, an API key, `small` requests
    with a small response each (as if the results had come back) and `per_size` with a
    response of each of SIZES, whose JSON the floor keeps as text and in Redis. Returns the
    key, the small ids and the sized ids by size."""
    import redis
    from sqlalchemy import text

    from request_network.models import (
        COMPLETED,
        Batch,
        ProfileType,
        Request,
        RequestEvent,
        Response,
        User,
    )
    from request_network.services.api_keys import create_key
    from request_network.settings import RequestSettings
    from shared.db import transaction, utcnow
    from shared.migrate import upgrade

    upgrade("request", url)
    with transaction(url) as session:
        session.execute(
            text("CREATE TABLE floor_requests (id text PRIMARY KEY, profile_type text, query text)")
        )
        session.execute(text("CREATE TABLE floor_responses (id text PRIMARY KEY, body text)"))
    prefix = "FERRY_REQUEST_"
    settings = RequestSettings(
        **{k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    )
    cache = redis.Redis.from_url(env["FERRY_REQUEST_REDIS_URL"])
    cache.flushdb()  # the bench's own Redis database
    big = {"minute": 5_000_000, "hour": 10_000_000, "day": 10_000_000}
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(small)]
    sized = {
        label: [f"00000000-0000-4000-8001-{k:04d}{n:08d}" for n in range(per_size)]
        for k, label in enumerate(SIZES)
    }
    batch_id = "00000000-0000-7000-8000-000000000001"
    with transaction(url) as session:
        profile = ProfileType(
            name="articles",
            index="articles",
            fields={"title": "text", "year": "integer"},
            return_fields=["title", "year"],
            max_size=50,
            rate_limits=big,
            version=1,
        )
        user = User(
            id="bench-user",
            username="bench",
            password_hash="!",  # noqa: S106 - no password: the bench calls with an API key
            role="user",
            profile_type="articles",
            active=True,
            version=1,
        )
        batch = Batch(
            id=batch_id,
            direction="in",
            stream="results",
            source="response",
            destination="request",
            seq=1,
            digest="0" * 64,
            filename="results-bench.jsonl",
            record_count=small,
            bytes=0,
        )
        session.add_all([profile, user, batch])
        session.flush()
        now = utcnow()
        # the sized first, so that the small ones are the newest (what `list` reads)
        answers = [
            (rid, hits_for(SIZES[size], rid)) for size, rids in sized.items() for rid in rids
        ]
        answers += [
            (rid, [{"title": f"hit {i}", "year": 2000 + i} for i in range(3)]) for rid in ids
        ]
        for n, (rid, hits) in enumerate(answers):
            at = now - timedelta(seconds=len(answers) - n)
            session.add(
                Request(
                    id=rid,
                    user_id=user.id,
                    profile_type="articles",
                    query=QUERY,
                    status=COMPLETED,
                    created_at=at,
                    updated_at=at,
                )
            )
            session.flush()
            session.add(RequestEvent(request_id=rid, status="PENDING", at=at, detail="submitted"))
            session.add(RequestEvent(request_id=rid, status=COMPLETED, at=at, detail="answered"))
            session.execute(
                text("INSERT INTO floor_requests VALUES (:i, 'articles', :q)"),
                {"i": rid, "q": str(QUERY)},
            )
            session.add(
                Response(
                    request_id=rid,
                    status="DONE",
                    total=len(hits),
                    hits=hits,
                    error=None,
                    executed_at=at,
                    took_ms=4,
                    received_at=at,
                    batch_id=batch_id,
                )
            )
        _, secret = create_key(
            settings,
            cache,
            session=session,
            user=user,
            name="bench",
            scopes=["requests:read", "requests:write"],
            expires_in_days=30,
        )
    _floor_copies(url, cache, [rid for rids in sized.values() for rid in rids])
    return secret, ids, sized


def _floor_copies(url: str, cache, ids: list[str]) -> None:
    """The floor's sized reads: each response's JSON as Ferry sends it, as text in
    `floor_responses` and as bytes in Redis."""
    from sqlalchemy import select, text

    from request_network.models import Response
    from request_network.services.response_cache import encode
    from shared.db import reading, transaction

    with reading(url) as session:
        bodies = {r.request_id: encode(r).body for r in session.scalars(
            select(Response).where(Response.request_id.in_(ids)))}  # fmt: skip
    with transaction(url) as session:
        for rid, body in bodies.items():
            session.execute(
                text("INSERT INTO floor_responses VALUES (:i, :b)"), {"i": rid, "b": body.decode()}
            )
    cache.mset({FLOOR_BLOB + rid: body for rid, body in bodies.items()})


def warm(base: str, key: str, ids: list[str]) -> dict[str, str]:
    """Read each id once (filling the cache on a cached server); their ETags."""
    import httpx

    tags = {}
    with httpx.Client(headers={"X-API-Key": key}, timeout=60) as client:
        for rid in ids:
            reply = client.get(f"{base}/api/v1/requests/{rid}/response")
            reply.raise_for_status()
            tags[rid] = reply.headers["ETag"]
    return tags


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited {process.returncode}: {log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"server not ready at {url}")


def start(argv: list[str], env: dict[str, str], ready: str, log: Path) -> subprocess.Popen:
    with log.open("w") as err:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    wait_ready(ready, process, log)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


# --- the load generator (its own process) ------------------------------------------------


FLOOR_PATHS = {"status": "/status/{}", "blob": "/blob/{}", "row": "/row/{}"}
PATHS = {
    "status": "/api/v1/requests/{}",
    "list": "/api/v1/requests?limit=20",
    "response": "/api/v1/requests/{}/response",
}


async def drive(spec: dict) -> dict:
    """`inflight` workers issuing `op` back to back for `seconds` (after a short warm-up),
    each on its own kept-alive connection (aiohttp: its pool costs the same at any size).

    A reply counts if it is a 200 or 202, or, when the spec says what to `expect` (e.g.
    ``200 HIT``), if its status and `X-Cache` are that; any other is an error. With `etags`
    (id → ETag) each read sends its id's as If-None-Match."""
    import aiohttp

    base, op, inflight = spec["base"], spec["op"], spec["inflight"]
    headers = {"X-API-Key": spec["key"]} if spec.get("key") else {}
    ids, etags, expect = spec["ids"], spec.get("etags") or {}, spec.get("expect")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    body_bytes: set[int] = set()
    rng = random.Random(inflight)
    body = orjson.dumps({"profile_type": "articles", "query": QUERY})
    post_headers = {**headers, "Content-Type": "application/json"}

    def request(session: aiohttp.ClientSession):
        rid = ids[rng.randrange(len(ids))]
        if op == "submit":
            path = "/submit" if spec["floor"] else "/api/v1/requests"
            return session.post(f"{base}{path}", data=body, headers=post_headers)
        path = (FLOOR_PATHS if spec["floor"] else PATHS)[op].format(rid)
        extra = {"If-None-Match": etags[rid]} if rid in etags else {}
        return session.get(f"{base}{path}", headers={**headers, **extra})

    connector = aiohttp.TCPConnector(limit=inflight)
    timeout = aiohttp.ClientTimeout(total=spec.get("timeout", 30))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        measuring = False
        stop_at = time.monotonic() + spec["warmup"] + spec["seconds"]

        async def worker() -> None:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    async with request(session) as reply:
                        size = len(await reply.read())
                        code: str = f"{reply.status} {reply.headers.get('X-Cache')}"
                        ok = code == expect if expect else reply.status in (200, 202)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    code, ok, size = type(exc).__name__, False, 0
                elapsed = time.perf_counter() - t0
                if not measuring:
                    continue
                if ok:
                    latencies.append(elapsed)
                    body_bytes.add(size)
                else:
                    errors[code.removesuffix(" None")] += 1

        tasks = [asyncio.create_task(worker()) for _ in range(inflight)]
        await asyncio.sleep(spec["warmup"])
        measuring = True
        started = time.monotonic()
        await asyncio.gather(*tasks)
        wall = time.monotonic() - started
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "ok": len(latencies),
        "per_s": len(latencies) / wall,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "bytes": max(body_bytes, default=0),
        "errors": dict(errors),
    }


def run_point(spec: dict) -> dict:
    """One point, driven from a separate process (so the server's cores are its own)."""
    done = subprocess.run(
        [sys.executable, __file__, "--drive"],
        input=orjson.dumps(spec),
        capture_output=True,
        check=True,
        cwd=ROOT,
        timeout=spec["warmup"] + spec["seconds"] + 2 * spec.get("timeout", 30) + 60,
    )
    return orjson.loads(done.stdout)


# --- profile -----------------------------------------------------------------------------


#: Frames every stack of a server passes through (thread start, the CLI, the event loop's
#: run): left out of the inclusive column, which would otherwise list only them.
GENERIC = ("threading.py", "anyio/_backends", "typer/", "uvicorn/main.py", "uvicorn/server.py",
           "uvicorn/_compat.py", "uvicorn/supervisors", "asyncio/runners.py", "base_events.py",
           "multiprocessing/", "ferry/cli.py", "shared/cli_util.py", "shared/network_cli.py",
           "<module>", "spawn_main")  # fmt: skip


def profile_top(
    raw: Path, top: int = 12
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """Own and inclusive samples per function from py-spy's collapsed stacks (inclusive:
    without the GENERIC frames)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
                  if " (" in f else f for f in stack.split(";")]  # fmt: skip
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            if not any(g in f for g in GENERIC):
                inclusive[f] += n
    return own.most_common(top), inclusive.most_common(top), total


def record_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    spy = str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--gil",
         "--duration", str(int(seconds)), "--rate", "200", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# --- report ------------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.1f}"  # nothing completed


def ratio(a: float | None, b: float | None) -> float:
    return a / b if a and b else float("nan")  # nan: nothing completed


def errors_of(*rows: dict) -> str:
    found = sum((Counter(r["errors"]) for r in rows), Counter())
    return ", ".join(f"{k}×{v}" for k, v in found.items()) or "0"


def report(rows: list[dict], args: argparse.Namespace, profile: str) -> str:
    command = "uv run python bench/bench_api.py " + " ".join(sys.argv[1:])
    lines = [
        MARK,
        "## Request API under load (PostgreSQL, Redis, uvicorn)",
        "",
        f"Machine: {cpu_model()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the end. Date: "
        f"{datetime.now(UTC):%Y-%m-%d}. Command: `{command.strip()}`.",
        "",
        f"`ferry request serve --workers {args.workers}` and the floor (`bench/floor_app.py`: "  # noqa: S608
        "pydantic body, one Redis INCR, one INSERT; a read is one SELECT by id) under the "
        f"same uvicorn settings and pool, driven from a separate process (aiohttp, asyncio) "
        f"for {args.seconds:g} s per point after {args.warmup:g} s of warm-up. The load "
        "generator shares the 2 cores: compare only within one run. Reads rotate over "
        f"{SEEDED} requests of the user, each with a response; list reads the newest 20. "
        "Ratios: Ferry ÷ floor req/s (list and response reads against the floor's read).",
        "",
        "| op | in flight | Ferry req/s | p50 ms | p95 ms | p99 ms | errors | floor req/s "
        "| floor p99 ms | req/s ratio | p99 ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    plain = [r for r in rows if r.get("size") is None]
    floor = {(r["op"], r["inflight"]): r for r in plain if r["app"] == "floor"}
    for r in (r for r in plain if r["app"] == "ferry"):
        f = floor[(FLOOR_OPS[r["op"]], r["inflight"])]
        ratio = r["per_s"] / f["per_s"] if f["per_s"] else float("nan")
        p99 = r["p99"] / f["p99"] if r["p99"] and f["p99"] else float("nan")
        lines.append(
            f"| {r['op']} | {r['inflight']} | {r['per_s']:.0f} | {fmt(r['p50'])} | "
            f"{fmt(r['p95'])} | {fmt(r['p99'])} | {errors_of(r)} | {f['per_s']:.0f} | "
            f"{fmt(f['p99'])} | {ratio:.2f}× | {p99:.2f}× |"
        )
    lines += sized_report(rows, args)
    if profile:
        lines += ["", profile]
    lines.append(MARK)
    return "\n".join(lines) + "\n"


def sized_report(rows: list[dict], args: argparse.Namespace) -> list[str]:
    """The response reads by size: cached against uncached, each beside its floor."""
    by = {(r["app"], r["op"], r["size"], r["inflight"]): r for r in rows if r.get("size")}
    if not by:
        return []
    lines = [
        "",
        f"Response reads by size, {PER_SIZE} requests per size read at random. *Uncached*: "
        "a second server with `FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES=0`, every read a miss "
        "(API key, owner, response row, its encoding and ETag). *Cached*: warmed first, "
        "every read a hit (API key, then one Redis round trip that is also the ownership "
        "check, the stored bytes sent as they are). Only replies of the expected kind count "
        "(200 MISS, 200 HIT); any other is an error. Floors: *row*, one SELECT of the stored "
        "JSON text sent as it is; *blob*, one Redis GET of the bytes sent as they are (no "
        "authentication for either). Target: cached ≥ 10× faster than uncached at p50, 1 MB.",
        "",
        "| size | body bytes | in flight | uncached p50 ms | floor row p50 ms | cached p50 ms "
        "| floor blob p50 ms | cached ÷ floor blob | speed-up (p50) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    verdicts = []
    for size in SIZES:
        for inflight in args.read_points:
            u = by[("ferry-uncached", "response", size, inflight)]
            c = by[("ferry", "response", size, inflight)]
            row = by.get(("floor", "row", size, inflight), {"p50": float("nan"), "errors": {}})
            blob = by.get(("floor", "blob", size, inflight), {"p50": float("nan"), "errors": {}})
            speedup, over = ratio(u["p50"], c["p50"]), ratio(c["p50"], blob["p50"])
            lines.append(
                f"| {size} | {c['bytes']:,} | {inflight} | {fmt(u['p50'])} | {fmt(row['p50'])} | "
                f"{fmt(c['p50'])} | {fmt(blob['p50'])} | {over:.1f}× | {speedup:.1f}× | "
                f"{errors_of(u, c, row, blob)} |"
            )
            if size == "1 MB":
                verdicts.append((inflight, speedup))
    met = all(s >= 10 for _, s in verdicts)
    lines += [
        "",
        ("Target met" if met else "**Target not met**")
        + " (cached ≥ 10× faster than uncached at p50, 1 MB): "
        + ", ".join(f"{s:.1f}× at {n} in flight" for n, s in verdicts)
        + ". bench/bench_cache.py (its section below) has the 304s, the p99s and the profiles.",
    ]
    return lines


def profile_text(raw: Path, what: str = "submit at 16 in flight") -> str:
    own, inclusive, total = profile_top(raw)
    lines = [
        f"py-spy, {what}, {total} samples over all server processes (`py-spy record --gil`: "
        "only the thread holding the GIL is sampled, so this is where Python's CPU time goes; "
        "inclusive: without thread start, CLI and event loop frames):",
        "",
        "| own | samples | inclusive | samples |",
        "| --- | ---: | --- | ---: |",
    ]
    for (fo, no), (fi, ni) in zip(own, inclusive, strict=False):
        lines.append(f"| `{fo}` | {no} | `{fi}` | {ni} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--points", default="1,16,64,256")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument(
        "--read-points",
        type=lambda s: [int(p) for p in s.split(",") if p],
        default=[1, 16],
        help="in flight for the sized response reads ('' for none)",
    )
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--timeout", type=float, default=30.0, help="a client's wait per request")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", type=Path, help="py-spy of submit at 16 in flight, here")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.drive:
        sys.stdout.write(
            orjson.dumps(asyncio.run(drive(orjson.loads(sys.stdin.buffer.read())))).decode()
        )
        return

    url = fresh_database()
    scratch = Path(tempfile.mkdtemp(prefix="ferry-bench-api-"))
    env = server_env(url, REDIS, scratch)
    key, ids, sized = seed(url, env)
    points = [int(p) for p in args.points.split(",") if p]
    ops = [op for op in args.ops.split(",") if op]
    rows: list[dict] = []
    profile = ""
    serve = [str(Path(sys.executable).parent / "ferry"), "request", "serve"]
    serve += ["--workers", str(args.workers)]
    apps = [("ferry", serve, env)]
    if args.read_points:  # first: it stores nothing, and must find nothing stored
        no_cache = env | {"FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES": "0"}
        apps.insert(0, ("ferry-uncached", serve, no_cache))
    if not args.no_floor:
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor_app:app",
            "--host",
            "127.0.0.1",
            "--workers",
            str(args.workers),
            "--http",
            SERVE_HTTP,  # the same server settings as `ferry request serve`
        ]  # fmt: skip (uvicorn's defaults, as Ferry's serve)
        apps.append(("floor", uvicorn, env))
    for app, argv, app_env in apps:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        ready = f"{base}/docs" if app == "floor" else f"{base}/health"
        server = start([*argv, "--port", str(port)], app_env, ready, scratch / f"{app}.log")
        try:
            for op, inflight, extra in plan(app, base, key, ops, points, args.read_points, sized):
                spec = {"base": base, "op": op, "inflight": inflight, "ids": ids, "key": key,
                        "floor": app == "floor", "seconds": args.seconds, "warmup": args.warmup,
                        "timeout": args.timeout, **extra}  # fmt: skip
                spy = None
                profiled = (app, op, inflight, extra) == ("ferry", "submit", 16, {})
                if args.profile and profiled:
                    spy = record_profile(server.pid, args.seconds, args.profile)
                row = {"app": app, "op": op, "inflight": inflight, "size": extra.get("size")}
                row |= run_point(spec)
                if spy is not None:
                    spy.wait(timeout=120)
                    profile = profile_text(args.profile)
                rows.append(row)
                print(orjson.dumps(row).decode(), flush=True)
        finally:
            stop(server)
    if args.no_floor:
        return
    section = report(rows, args, profile)
    print(section)
    if not args.no_write:
        write_section(MARK, section)


def plan(
    app: str,
    base: str,
    key: str,
    ops: list[str],
    points: list[int],
    read_points: list[int],
    sized: dict[str, list[str]],
) -> list[tuple[str, int, dict]]:
    """The points an app serves, in order: (op, in flight, what the spec adds)."""
    if app == "ferry":
        out = [(op, n, {}) for op in ops for n in points]
    elif app == "floor":
        out = [(op, n, {}) for op in sorted({FLOOR_OPS[o] for o in ops}) for n in points]
    else:
        out = []
    for size, size_ids in sized.items() if read_points else ():
        if app == "ferry":
            warm(base, key, size_ids)  # every read of these is a hit from now on
        expect = {"ferry": "200 HIT", "ferry-uncached": "200 MISS"}.get(app)
        for op in ("row", "blob") if app == "floor" else ("response",):
            extra = {"ids": size_ids, "size": size, "expect": expect}
            out += [(op, n, extra) for n in read_points]
    return out


if __name__ == "__main__":
    main()
