"""The request API under load, against a floor app, in one run. Writes docs/PERFORMANCE.md.

    uv run python bench/bench_api.py                      # 1, 16, 64 and 256 in flight
    uv run python bench/bench_api.py --profile profile.txt  # + py-spy of submit at 16

Starts the request API as production would (`ferry request serve --workers N`, real
PostgreSQL and Redis), seeds a user with an API key and limits nothing reaches, and drives
it from a separate process (`--drive`, aiohttp) with bounded concurrency: submit,
status by id, own list, response read. Then the floor (bench/floor_app.py: a pydantic body,
one Redis INCR, one INSERT; a read is one SELECT by id) under the same uvicorn settings and
pool, at the same points. Each point: req/s, p50, p95, p99 and errors. The load generator
shares the machine's cores: compare only within one run.
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


# --- set-up ------------------------------------------------------------------------------


def fresh_database() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    return make_url(PG).set(database=DB_NAME).render_as_string(hide_password=False)


def seed(url: str, env: dict[str, str]) -> tuple[str, list[str]]:
    """A profile type and user with limits nothing reaches, an API key, and SEEDED requests
    with a response each (as if the results had come back). Returns the key and the ids."""
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
    prefix = "FERRY_REQUEST_"
    settings = RequestSettings(
        **{k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    )
    cache = redis.Redis.from_url(REDIS)
    cache.flushdb()  # the bench's own Redis database
    big = {"minute": 5_000_000, "hour": 10_000_000, "day": 10_000_000}
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(SEEDED)]
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
            record_count=SEEDED,
            bytes=0,
        )
        session.add_all([profile, user, batch])
        session.flush()
        now = utcnow()
        for n, rid in enumerate(ids):
            at = now - timedelta(seconds=SEEDED - n)
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
            hits = [{"title": f"hit {i}", "year": 2000 + i} for i in range(3)]
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
    return secret, ids


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


async def drive(spec: dict) -> dict:
    """`inflight` workers issuing `op` back to back for `seconds` (after a short warm-up),
    each on its own kept-alive connection (aiohttp: its pool costs the same at any size)."""
    import aiohttp

    base, op, inflight = spec["base"], spec["op"], spec["inflight"]
    headers = {"X-API-Key": spec["key"]} if spec.get("key") else {}
    ids = spec["ids"]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    rng = random.Random(inflight)
    body = orjson.dumps({"profile_type": "articles", "query": QUERY})
    post_headers = {**headers, "Content-Type": "application/json"}

    def request(session: aiohttp.ClientSession):
        rid = ids[rng.randrange(len(ids))]
        if spec["floor"]:
            if op == "submit":
                return session.post(f"{base}/submit", data=body, headers=post_headers)
            return session.get(f"{base}/status/{rid}")
        if op == "submit":
            return session.post(f"{base}/api/v1/requests", data=body, headers=post_headers)
        if op == "status":
            return session.get(f"{base}/api/v1/requests/{rid}", headers=headers)
        if op == "list":
            return session.get(f"{base}/api/v1/requests?limit=20", headers=headers)
        return session.get(f"{base}/api/v1/requests/{rid}/response", headers=headers)

    connector = aiohttp.TCPConnector(limit=inflight)
    timeout = aiohttp.ClientTimeout(total=spec["timeout"])
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        measuring = False
        stop_at = time.monotonic() + spec["warmup"] + spec["seconds"]

        async def worker() -> None:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    async with request(session) as reply:
                        await reply.read()
                        code: int | str = reply.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    code = type(exc).__name__
                elapsed = time.perf_counter() - t0
                if not measuring:
                    continue
                if code in (200, 202):
                    latencies.append(elapsed)
                else:
                    errors[str(code)] += 1

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
        timeout=spec["warmup"] + spec["seconds"] + 2 * spec["timeout"] + 60,
    )
    return orjson.loads(done.stdout)


# --- profile -----------------------------------------------------------------------------


def profile_top(
    raw: Path, top: int = 12
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    """Own and inclusive samples per function from py-spy's collapsed stacks."""
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
    floor = {(r["op"], r["inflight"]): r for r in rows if r["app"] == "floor"}
    for r in (r for r in rows if r["app"] == "ferry"):
        f = floor[(FLOOR_OPS[r["op"]], r["inflight"])]
        errors = ", ".join(f"{k}×{v}" for k, v in r["errors"].items()) or "0"
        ratio = r["per_s"] / f["per_s"] if f["per_s"] else float("nan")
        p99 = r["p99"] / f["p99"] if r["p99"] and f["p99"] else float("nan")
        lines.append(
            f"| {r['op']} | {r['inflight']} | {r['per_s']:.0f} | {fmt(r['p50'])} | "
            f"{fmt(r['p95'])} | {fmt(r['p99'])} | {errors} | {f['per_s']:.0f} | "
            f"{fmt(f['p99'])} | {ratio:.2f}× | {p99:.2f}× |"
        )
    if profile:
        lines += ["", profile]
    lines.append(MARK)
    return "\n".join(lines) + "\n"


def profile_text(raw: Path) -> str:
    own, inclusive, total = profile_top(raw)
    lines = [f"py-spy, submit at 16 in flight, {total} samples over all server processes "
             "(`py-spy record --gil`: only the thread holding the GIL is sampled, so this is where "
             "Python's CPU time goes):", "",
             "| own | samples | inclusive | samples |", "| --- | ---: | --- | ---: |"]  # fmt: skip
    for (fo, no), (fi, ni) in zip(own, inclusive, strict=False):
        lines.append(f"| `{fo}` | {no} | `{fi}` | {ni} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--points", default="1,16,64,256")
    parser.add_argument("--ops", default=",".join(OPS))
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
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")} | {
        "FERRY_REQUEST_MODE": "production",
        "FERRY_REQUEST_DATABASE_URL": url,
        "FERRY_REQUEST_REDIS_URL": REDIS,
        "FERRY_REQUEST_JWT_SECRET": "bench-jwt-secret-0123456789abcdef0123456789",
        "FERRY_REQUEST_API_KEY_PEPPER": "bench-pepper-0123456789abcdef0123456789",
        "FERRY_REQUEST_TRANSFER_DIR": str(scratch / "transfer"),
        "FERRY_LOG_LEVEL": "WARNING",
        "FLOOR_DATABASE_URL": url,
        "FLOOR_REDIS_URL": REDIS,
    }
    key, ids = seed(url, env)
    points = [int(p) for p in args.points.split(",")]
    ops = args.ops.split(",")
    rows: list[dict] = []
    profile = ""
    ferry = str(Path(sys.executable).parent / "ferry")
    apps = [("ferry", [ferry, "request", "serve", "--workers", str(args.workers)])]
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
        apps.append(("floor", uvicorn))
    for app, argv in apps:
        port = free_port()
        argv = [*argv, "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        ready = f"{base}/health" if app == "ferry" else f"{base}/docs"
        server = start(argv, env, ready, scratch / f"{app}.log")
        try:
            for op in ops if app == "ferry" else sorted({FLOOR_OPS[o] for o in ops}):
                for inflight in points:
                    spec = {"base": base, "op": op, "inflight": inflight, "ids": ids,
                            "key": key, "floor": app == "floor", "seconds": args.seconds,
                            "warmup": args.warmup, "timeout": args.timeout}  # fmt: skip
                    spy = None
                    if args.profile and app == "ferry" and op == "submit" and inflight == 16:
                        spy = record_profile(server.pid, args.seconds, args.profile)
                    row = {"app": app, "op": op, "inflight": inflight, **run_point(spec)}
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


if __name__ == "__main__":
    main()
