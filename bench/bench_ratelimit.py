"""Rate-limit check latency and throughput against a local Redis. Writes docs/PERFORMANCE.md.

Compares, from the same client in the same run:
- a bare Redis ``PING`` (the floor: one round trip doing nothing);
- one Ferry check (``RateLimiter.check``: one EVALSHA over minute, hour and day);
- the ``limits`` library's sliding-window counter doing the same three windows as three
  ``hit`` calls (one round trip each, not atomic across the windows);
- (sync) the check as the request API makes it: the same EVALSHA also counting its decision
  in the hour's tally and ready to list the thresholds it crosses (none here).

Serial with the sync client (the API's path), then with redis.asyncio at 1, 16 and 64
requests in flight. Limits are high enough that nothing is refused, spread over 1,000 users.

    uv run python bench/bench_ratelimit.py [--ops 20000] [--redis-url redis://127.0.0.1:6379/15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import redis
import redis.asyncio
from limits import parse
from limits.aio.storage import RedisStorage as AsyncLimitsStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter as AsyncSlidingWindow
from limits.storage import RedisStorage as LimitsStorage
from limits.strategies import SlidingWindowCounterRateLimiter as SlidingWindow
from perf_doc import cpu_model, write_section

from shared.ratelimit import AsyncRateLimiter, Policy, RateLimiter, keys_for

MARK = "<!-- bench_ratelimit -->"
USERS = 1_000
LIMITS = {"minute": 1_000_000, "hour": 5_000_000, "day": 10_000_000}
ITEMS = [parse("1000000/minute"), parse("5000000/hour"), parse("10000000/day")]
PING, FERRY, LIMITS_LIB = (
    "Redis PING (floor)",
    "Ferry check (1 EVALSHA, 3 windows)",
    "limits sliding window (3 hits)",
)
AS_API = "Ferry check as the API makes it (+ tally, crossings list)"


ROUNDS = 20  # the operations take turns in blocks, so load on the host hits them alike


def summary(name: str, mode: str, latencies: list[float], wall: float) -> dict:
    lat = sorted(latencies)
    return {
        "name": name,
        "mode": mode,
        "ops": len(lat),
        "per_s": len(lat) / wall,
        "p50": lat[len(lat) // 2] * 1e6,
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
        "mean": statistics.fmean(lat) * 1e6,
    }


def run_sync(ops_by_name: dict[str, Callable[[int], object]], ops: int) -> list[dict]:
    lat = {name: [] for name in ops_by_name}
    wall = dict.fromkeys(ops_by_name, 0.0)
    for fn in ops_by_name.values():  # warm up: connections, script cache
        for i in range(min(1_000, ops)):
            fn(i)
    block = max(1, ops // ROUNDS)
    for r in range(ROUNDS):
        for name, fn in ops_by_name.items():
            start = time.perf_counter()
            for i in range(r * block, (r + 1) * block):
                t = time.perf_counter()
                fn(i)
                lat[name].append(time.perf_counter() - t)
            wall[name] += time.perf_counter() - start
    return [summary(n, "sync, serial", lat[n], wall[n]) for n in ops_by_name]


async def run_async(
    ops_by_name: dict[str, Callable[[int], Awaitable]], ops: int, inflight: int
) -> list[dict]:
    lat: dict[str, list[float]] = {name: [] for name in ops_by_name}
    wall = dict.fromkeys(ops_by_name, 0.0)
    for fn in ops_by_name.values():
        for i in range(min(1_000, ops)):
            await fn(i)
    block = max(inflight, ops // ROUNDS)

    async def worker(name: str, fn, first: int, w: int) -> None:
        for i in range(first + w, first + block, inflight):
            t = time.perf_counter()
            await fn(i)
            lat[name].append(time.perf_counter() - t)

    for r in range(ROUNDS):
        for name, fn in ops_by_name.items():
            start = time.perf_counter()
            await asyncio.gather(*(worker(name, fn, r * block, w) for w in range(inflight)))
            wall[name] += time.perf_counter() - start
    mode = "async, serial" if inflight == 1 else f"async, {inflight} in flight"
    return [summary(n, mode, lat[n], wall[n]) for n in ops_by_name]


def sync_rows(url: str, ops: int, run_id: str) -> list[dict]:
    client = redis.Redis.from_url(url)
    ours = RateLimiter(client, Policy())
    api = RateLimiter(
        client, Policy(), tally=f"bench-{run_id}-tally:", crossings=f"bench-{run_id}-crossings"
    )
    theirs = SlidingWindow(LimitsStorage(url))

    def users(i: int) -> str:
        return f"bench-{run_id}-{i % USERS}"

    def three_hits(i: int) -> None:
        for item in ITEMS:
            theirs.hit(item, users(i))

    rows = run_sync(
        {
            PING: lambda i: client.ping(),
            FERRY: lambda i: ours.check(users(i), LIMITS),
            LIMITS_LIB: three_hits,
            AS_API: lambda i: api.check(users(i), LIMITS),
        },
        ops,
    )
    client.close()
    return rows


async def async_rows(url: str, ops: int, run_id: str, inflight: int) -> list[dict]:
    client = redis.asyncio.Redis.from_url(url, max_connections=max(inflight, 1) * 2)
    ours = AsyncRateLimiter(client, Policy())
    theirs = AsyncSlidingWindow(
        AsyncLimitsStorage(url.replace("redis://", "async+redis://"), implementation="redispy")
    )

    def users(i: int) -> str:
        return f"bench-{run_id}-{i % USERS}"

    async def three_hits(i: int) -> None:
        for item in ITEMS:
            await theirs.hit(item, users(i))

    async def check(i: int) -> None:
        await ours.check(users(i), LIMITS)

    async def ping(i: int) -> None:
        await client.ping()

    rows = await run_async({PING: ping, FERRY: check, LIMITS_LIB: three_hits}, ops, inflight)
    await client.aclose()
    return rows


def server_side_us(url: str, run_id: str, n: int = 5_000) -> dict[str, float]:
    """Redis's own time per call (INFO commandstats deltas): a check's script vs PING."""
    client = redis.Redis.from_url(url)
    ours = RateLimiter(client, Policy())

    def stats(command: str) -> tuple[int, int]:
        s = client.info("commandstats").get(f"cmdstat_{command}", {})
        return s.get("calls", 0), s.get("usec", 0)

    out = {}
    for command, fn in (
        ("evalsha", lambda i: ours.check(f"bench-{run_id}-{i % USERS}", LIMITS)),
        ("ping", lambda i: client.ping()),
    ):
        calls0, usec0 = stats(command)
        for i in range(n):
            fn(i)
        calls1, usec1 = stats(command)
        out[command] = (usec1 - usec0) / max(1, calls1 - calls0)
    client.close()
    return out


def cleanup(url: str, run_id: str) -> None:
    client = redis.Redis.from_url(url)
    for i in range(USERS):
        client.delete(*keys_for(f"bench-{run_id}-{i}"))
    for key in client.scan_iter(match=f"*bench-{run_id}-*", count=1_000):
        client.delete(key)
    client.close()


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        by = {r["name"]: r for r in rows if r["mode"] == mode}
        ping, ours, theirs = by[PING], by[FERRY], by[LIMITS_LIB]
        floor = ours["p50"] / ping["p50"]
        speed = ours["per_s"] / theirs["per_s"]
        latency = theirs["p50"] / ours["p50"]
        out.append(
            f"| {mode} | {floor:.2f}× | {'met' if floor <= 2 else 'NOT met'} | "
            f"{speed:.2f}× | {latency:.2f}× | {'met' if min(speed, latency) >= 2 else 'NOT met'} |"
        )
    return out


def write(
    rows: list[dict], args: argparse.Namespace, redis_version: str, server: dict[str, float]
) -> str:
    command = f"uv run python bench/bench_ratelimit.py --ops {args.ops}"
    lines = [
        MARK,
        "## Rate limiter: one check against the local Redis",
        "",
        f"Machine: {cpu_model()}, {platform.machine()}, Python {platform.python_version()}, "
        f"Redis {redis_version} on the same host (TCP loopback); host load average "
        f"{os.getloadavg()[0]:.1f} (a shared machine: other work was running). "
        f"Date: {datetime.now(UTC):%Y-%m-%d}. Command: `{command}`.",
        "",
        f"{args.ops:,} operations per row after 1,000 warm-up operations, taken in "
        f"{ROUNDS} alternating blocks per mode so load on the host hits all rows alike; keys "
        "spread over "
        f"{USERS:,} users, limits high enough that nothing is refused. Latency is one "
        "operation as the caller sees it (a Ferry check: one EVALSHA over three windows; "
        "`limits`: three `hit` calls, one per window). Targets: Ferry p50 within 2× of "
        "PING; Ferry at least 2× the throughput of `limits` for the three windows. The "
        "last sync row is the check as the request API makes it: the same script also "
        "counting its decision in the hour's tally and keeping the list of thresholds "
        "crossed that the rate-limit notifications read (`shared/ratelimit/crossings.py`); "
        "its p50 beside the plain check's is what those cost a submission.",
        "",
        "| mode | operation | ops/s | p50 µs | p99 µs | mean µs |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['name']} | {r['per_s']:,.0f} | {r['p50']:.0f} | "
            f"{r['p99']:.0f} | {r['mean']:.0f} |"
        )
    lines += [
        "",
        "| mode | Ferry p50 ÷ PING p50 | ≤ 2× | Ferry ops/s ÷ limits ops/s "
        "| limits p50 ÷ Ferry p50 | both ≥ 2× |",
        "| --- | ---: | --- | ---: | ---: | --- |",
        *verdicts(rows),
        "",
        f"Where a check's time goes (same run): inside Redis one Ferry check takes "
        f"{server['evalsha']:.1f} µs (INFO commandstats: the script's TIME, 3 HMGET, 3 HSET "
        f"and its arithmetic) against {server['ping']:.1f} µs for PING; the rest is the "
        "round trip plus redis-py packing 26 arguments and building the `Decision`.",
        MARK,
    ]
    section = "\n".join(lines) + "\n"
    write_section(MARK, section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    version = redis.Redis.from_url(args.redis_url).info("server")["redis_version"]
    try:
        rows = sync_rows(args.redis_url, args.ops, run_id)
        for inflight in (1, 16, 64):
            rows += asyncio.run(async_rows(args.redis_url, args.ops, run_id, inflight))
        server = server_side_us(args.redis_url, run_id)
    finally:
        cleanup(args.redis_url, run_id)
    if args.no_write:
        for r in rows:
            print(r)
        print("\n".join(verdicts(rows)), server)
    else:
        print(write(rows, args, version, server))


if __name__ == "__main__":
    main()
