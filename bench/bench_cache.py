"""Response reads over HTTP: from the cache against from the database, at 1 KB, 100 KB and
1 MB. Writes docs/PERFORMANCE.md.

    uv run python bench/bench_cache.py                  # 1 and 8 in flight, 5 s a point
    uv run python bench/bench_cache.py --no-write       # print only

Starts the request API as production would (`ferry request serve`, real PostgreSQL and Redis)
twice: as configured (the cache on, the default 1 MiB cap), and with
`FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES=0`, where every read misses (the owner, the response
row, its encoding and ETag, the cache's miss; nothing is stored). One user with an API key
and, per size, a few requests with a response of that size; each point reads them in turn
from a separate process (aiohttp, kept-alive connections, `inflight` readers back to back
for `seconds` after a warm-up). Cached points are warmed first and must answer `X-Cache:
HIT`; uncached ones `MISS`; a 304 point sends the ETag back (`If-None-Match`). Each point:
p50, p99, req/s. Target: cached at least 10× faster than uncached at p50 for 100 KB and 1 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
from bench_api import free_port, start, stop
from perf_doc import cpu_model, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MARK = "<!-- bench_cache -->"
PG = os.environ.get(
    "FERRY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("FERRY_BENCH_CACHE_REDIS_URL", "redis://127.0.0.1:6379/13")
DB_NAME = "ferry_bench_cache"
SIZES = {"1 KB": 1_000, "100 KB": 100_000, "1 MB": 1_000_000}
PER_SIZE = 8  # requests per size, read in turn
QUERY = {"query": {"match": {"field": "title", "value": "harbour"}}, "size": 50}


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


def seed(url: str, env: dict[str, str]) -> tuple[str, dict[str, list[str]]]:
    """A profile type, a user with an API key, and PER_SIZE answered requests per size."""
    import redis

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
    prefix = "FERRY_REQUEST_"
    settings = RequestSettings(
        **{k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    )
    cache = redis.Redis.from_url(REDIS)
    cache.flushdb()  # the bench's own Redis database
    ids: dict[str, list[str]] = {}
    big = {"minute": 5_000_000, "hour": 10_000_000, "day": 10_000_000}
    batch_id = "00000000-0000-7000-8000-000000000001"
    with transaction(url) as session:
        user = User(id="bench-user", username="bench", password_hash="!", role="user",  # noqa: S106
                    profile_type="articles", active=True, version=1)  # fmt: skip
        session.add_all(
            [
                ProfileType(name="articles", index="articles", fields={"title": "text"},
                            return_fields=["title"], max_size=50, rate_limits=big, version=1),
                user,
                Batch(id=batch_id, direction="in", stream="results", source="response",
                      destination="request", seq=1, digest="0" * 64,
                      filename="results-bench.jsonl", record_count=0, bytes=0),
            ]
        )  # fmt: skip
        session.flush()
        now = utcnow()
        for k, (label, nbytes) in enumerate(SIZES.items()):
            ids[label] = []
            for n in range(PER_SIZE):
                rid = f"00000000-0000-4000-8000-{k:04d}{n:08d}"
                session.add(Request(id=rid, user_id=user.id, profile_type="articles",
                                    query=QUERY, status=COMPLETED, created_at=now,
                                    updated_at=now))  # fmt: skip
                session.flush()
                session.add(RequestEvent(request_id=rid, status=COMPLETED, at=now, detail=""))
                hits = hits_for(nbytes, rid)
                session.add(Response(request_id=rid, status="DONE", total=len(hits), hits=hits,
                                     error=None, executed_at=now, took_ms=4, received_at=now,
                                     batch_id=batch_id))  # fmt: skip
                ids[label].append(rid)
        _, secret = create_key(settings, cache, session=session, user=user, name="bench",
                               scopes=["requests:read"], expires_in_days=30)  # fmt: skip
    return secret, ids


# --- the load generator (its own process) ------------------------------------------------


async def drive(spec: dict) -> dict:
    """`inflight` readers, each on its own kept-alive connection, reading the ids in turn."""
    import aiohttp

    base, ids, inflight = spec["base"], spec["ids"], spec["inflight"]
    headers = {"X-API-Key": spec["key"]}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    body_bytes: set[int] = set()
    turn = iter(range(10**12))
    connector = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(connector=connector) as session:
        measuring = False
        stop_at = time.monotonic() + spec["warmup"] + spec["seconds"]

        async def reader() -> None:
            while time.monotonic() < stop_at:
                rid = ids[next(turn) % len(ids)]
                extra = {"If-None-Match": spec["etags"][rid]} if spec["etags"] else {}
                t0 = time.perf_counter()
                async with session.get(
                    f"{base}/api/v1/requests/{rid}/response", headers={**headers, **extra}
                ) as reply:
                    body = await reply.read()
                    outcome = f"{reply.status} {reply.headers.get('X-Cache')}"
                elapsed = time.perf_counter() - t0
                if not measuring:
                    continue
                if outcome == spec["expect"]:
                    latencies.append(elapsed)
                    body_bytes.add(len(body))
                else:
                    errors[outcome] += 1

        tasks = [asyncio.create_task(reader()) for _ in range(inflight)]
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
        "p99": pct(0.99),
        "bytes": max(body_bytes, default=0),
        "errors": dict(errors),
    }


def run_point(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--drive"],
        input=orjson.dumps(spec),
        capture_output=True,
        check=True,
        cwd=ROOT,
        timeout=spec["warmup"] + spec["seconds"] + 120,
    )
    return orjson.loads(done.stdout)


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


# --- report ------------------------------------------------------------------------------


def fmt(x: float) -> str:
    return "—" if x != x else f"{x:.2f}"


def report(rows: list[dict], args: argparse.Namespace) -> str:
    command = "uv run python bench/bench_cache.py " + " ".join(sys.argv[1:])
    by = {(r["size"], r["mode"], r["inflight"]): r for r in rows}
    lines = [
        MARK,
        "## Response reads: cached against uncached (HTTP, PostgreSQL, Redis)",
        "",
        f"Machine: {cpu_model()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f} at the end. Date: "
        f"{datetime.now(UTC):%Y-%m-%d}. Command: `{command.strip()}`.",
        "",
        f"`ferry request serve --workers {args.workers}` on real PostgreSQL and Redis, read "
        "over HTTP with an API key from a separate process (aiohttp, kept-alive connections, "
        f"{args.seconds:g} s per point after {args.warmup:g} s of warm-up), {PER_SIZE} "
        "requests per size read in turn. *Uncached*: the same server with "
        "`FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES=0`, so every read misses: the owner, the "
        "response row, its encoding and ETag. *Cached*: warmed first, every read a hit: the "
        "owner, then one Redis round trip, the stored bytes sent as they are. *304*: a hit "
        "whose `If-None-Match` names the ETag (no body). Every point counts only replies "
        "of its kind (200 MISS, 200 HIT, 304 HIT); any other would be listed as an error. "
        "The load generator shares the machine's cores.",
        "",
        "| size | body bytes | in flight | uncached p50 ms | uncached p99 ms | cached p50 ms "
        "| cached p99 ms | 304 p50 ms | p50 speed-up | uncached req/s | cached req/s | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    verdicts = []
    for size in SIZES:
        for inflight in args.points:
            u, c = by[(size, "uncached", inflight)], by[(size, "cached", inflight)]
            nm = by[(size, "304", inflight)]
            speedup = u["p50"] / c["p50"] if c["p50"] else float("nan")
            errors = Counter(u["errors"]) + Counter(c["errors"]) + Counter(nm["errors"])
            lines.append(
                f"| {size} | {c['bytes']:,} | {inflight} | {fmt(u['p50'])} | {fmt(u['p99'])} | "
                f"{fmt(c['p50'])} | {fmt(c['p99'])} | {fmt(nm['p50'])} | {speedup:.1f}× | "
                f"{u['per_s']:.0f} | {c['per_s']:.0f} | "
                f"{', '.join(f'{k}×{v}' for k, v in errors.items()) or '0'} |"
            )
            if size != "1 KB" and inflight == 1:
                verdicts.append((size, speedup))
    met = all(s >= 10 for _, s in verdicts)
    lines += [
        "",
        ("Target met" if met else "Target not met")
        + " (cached ≥ 10× faster than uncached at p50, one in flight, for 100 KB and 1 MB): "
        + ", ".join(f"{size} {s:.1f}×" for size, s in verdicts)
        + ". The 304 column is the floor of any read here, cached or not: the HTTP stack, "
        "the API key's check (a SELECT and a Redis revocation lookup), the owner's SELECT, "
        "two thread hops and one Redis round trip, with no body. A hit adds only sending the "
        "stored bytes; a miss adds reading the response row (psycopg decodes its JSON with "
        "the standard library), encoding it and hashing it for the ETag. The cache takes the "
        "second part away, so it pays in proportion to the response's size, against a fixed "
        "cost per read that it cannot touch.",
        MARK,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--points", type=lambda s: [int(p) for p in s.split(",")], default=[1, 8])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.drive:
        sys.stdout.write(
            orjson.dumps(asyncio.run(drive(orjson.loads(sys.stdin.buffer.read())))).decode()
        )
        return

    url = fresh_database()
    scratch = Path(tempfile.mkdtemp(prefix="ferry-bench-cache-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")} | {
        "FERRY_REQUEST_MODE": "production",
        "FERRY_REQUEST_DATABASE_URL": url,
        "FERRY_REQUEST_REDIS_URL": REDIS,
        "FERRY_REQUEST_JWT_SECRET": "bench-jwt-secret-0123456789abcdef0123456789",
        "FERRY_REQUEST_API_KEY_PEPPER": "bench-pepper-0123456789abcdef0123456789",
        "FERRY_REQUEST_TRANSFER_DIR": str(scratch / "transfer"),
        "FERRY_LOG_LEVEL": "WARNING",
    }
    key, ids = seed(url, env)
    ferry = str(Path(sys.executable).parent / "ferry")
    servers = {
        "uncached": env | {"FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES": "0"},
        "cached": env,
    }
    rows: list[dict] = []
    for server, server_env in servers.items():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        argv = [ferry, "request", "serve", "--workers", str(args.workers), "--port", str(port)]
        process = start(argv, server_env, f"{base}/health", scratch / f"{server}.log")
        try:
            for size, size_ids in ids.items():
                etags = warm(base, key, size_ids)
                modes = {"uncached": "200 MISS"} if server == "uncached" else {
                    "cached": "200 HIT", "304": "304 HIT"}  # fmt: skip
                for mode, expect in modes.items():
                    for inflight in args.points:
                        spec = {"base": base, "key": key, "ids": size_ids, "inflight": inflight,
                                "etags": etags if mode == "304" else {}, "expect": expect,
                                "seconds": args.seconds, "warmup": args.warmup}  # fmt: skip
                        row = {"size": size, "mode": mode, "inflight": inflight, **run_point(spec)}
                        rows.append(row)
                        print(orjson.dumps(row).decode(), flush=True)
        finally:
            stop(process)
    section = report(rows, args)
    print(section)
    if not args.no_write:
        write_section(MARK, section)


if __name__ == "__main__":
    main()
