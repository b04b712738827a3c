"""Response reads over HTTP: from the cache against from the database, at 1 KB, 100 KB and
1 MB. Writes docs/PERFORMANCE.md.

    uv run python bench/bench_cache.py                  # 1 and 8 in flight, 5 s a point
    uv run python bench/bench_cache.py --no-write       # print only

Starts the request API as production would (`ferry request serve`, real PostgreSQL and Redis)
twice: as configured (the cache on, the default 1 MiB cap), and with
`FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES=0`, where every read misses (the owner, the response
row, its encoding and ETag, the cache's miss; nothing is stored). One user with an API key
and, per size, a few requests with a response of that size; each point reads them at random
from a separate process (bench_api.py's load generator: aiohttp, kept-alive connections,
`inflight` readers back to back for `seconds` after a warm-up). Cached points are warmed
first and must answer `X-Cache: HIT`; uncached ones `MISS`; a 304 point sends the ETag back
(`If-None-Match`). Each point: p50, p99, req/s. Target: cached at least 10× faster than
uncached at p50 at 1 MB (bench_api.py reports the same reads beside its floor).
`--profile DIR`: py-spy of the 1 MB hits and 304s at the most in flight.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson
from bench_api import (
    SIZES,
    errors_of,
    free_port,
    fresh_database,
    profile_text,
    ratio,
    record_profile,
    run_point,
    seed,
    server_env,
    start,
    stop,
    warm,
)
from perf_doc import cpu_model, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MARK = "<!-- bench_cache -->"
REDIS = os.environ.get("FERRY_BENCH_CACHE_REDIS_URL", "redis://127.0.0.1:6379/13")
DB_NAME = "ferry_bench_cache"
PROFILED = ("1 MB",)  # --profile: the size whose hits and 304s are profiled
PER_SIZE = 8  # requests per size, read at random


# --- report ------------------------------------------------------------------------------


def fmt(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.2f}"  # nothing completed


def verdict(points: list[tuple[int, float, float, float]]) -> str:
    """Met or not at 1 MB, from (in flight, speed-up, 304 p50, uncached p50) per point."""
    met = all(s >= 10 for _, s, _, _ in points)
    text = "Target met" if met else "**Target not met**"
    text += " (cached ≥ 10× faster than uncached at p50 at 1 MB): "
    text += ", ".join(f"{s:.1f}× at {n} in flight" for n, s, _, _ in points) + ". "
    text += (
        "The 304 column is the floor of any hit: the HTTP stack, the API key's check (a SELECT "
        "of the key and its user, a Redis round trip for the revocation marks) and the "
        "cache's one Redis round trip, with no body. A 1 MB hit adds moving "
        "the body from Redis to the client; a miss adds the owner's SELECT, reading the "
        "response row (psycopg decodes its JSON), encoding it and hashing it for the ETag."
    )
    for n, s, floor, uncached in points[:1]:
        if s < 10 and uncached / 10 < floor:
            text += (
                f" At {n} in flight 10× would need a 1 MB hit of {fmt(uncached / 10)} ms, "
                f"under the {fmt(floor)} ms that a 304, with no body at all, takes."
            )
    return text


def report(rows: list[dict], args: argparse.Namespace, profiles: list[str]) -> str:
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
        "requests per size read at random. *Uncached*: the same server with "
        "`FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES=0`, so every read misses: the cache's lookup, "
        "the owner's SELECT, the response row, its encoding and ETag, the miss counted. "
        "*Cached*: warmed first, every read a hit: the API key's check, then (in the "
        "endpoint's thread hop) one Redis round trip (a Lua script that checks the entry's "
        "owner and "
        "counts the hit, and a GET of the body, in one MULTI/EXEC), the stored bytes sent as "
        "they are; no database read after the key's. *304*: a hit whose `If-None-Match` "
        "names the ETag (no body). Every point counts only replies of its kind (200 MISS, "
        "200 HIT, 304 HIT); any other would be listed as an error. The load generator shares "
        "the machine's cores.",
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
            speedup = ratio(u["p50"], c["p50"])
            lines.append(
                f"| {size} | {c['bytes']:,} | {inflight} | {fmt(u['p50'])} | {fmt(u['p99'])} | "
                f"{fmt(c['p50'])} | {fmt(c['p99'])} | {fmt(nm['p50'])} | {speedup:.1f}× | "
                f"{u['per_s']:.0f} | {c['per_s']:.0f} | {errors_of(u, c, nm)} |"
            )
            if size == "1 MB":
                verdicts.append((inflight, speedup, nm["p50"], u["p50"]))
    lines += ["", verdict(verdicts)]
    for profile in profiles:
        lines += ["", profile]
    lines.append(MARK)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=lambda s: [int(p) for p in s.split(",")], default=[1, 8])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--profile", type=Path, help="py-spy of the 1 MB hit and 304 at the most in flight, here"
    )
    args = parser.parse_args()

    url = fresh_database(DB_NAME)
    scratch = Path(tempfile.mkdtemp(prefix="ferry-bench-cache-"))
    env = server_env(url, REDIS, scratch)
    key, _, ids = seed(url, env, small=0, per_size=PER_SIZE)
    serve = [str(Path(sys.executable).parent / "ferry"), "request", "serve"]
    serve += ["--workers", str(args.workers)]
    servers = {"uncached": env | {"FERRY_REQUEST_RESPONSE_CACHE_MAX_BYTES": "0"}, "cached": env}
    rows: list[dict] = []
    profiles: list[str] = []
    for server, app_env in servers.items():
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start([*serve, "--port", str(port)], app_env, f"{base}/health",
                        scratch / f"{server}.log")  # fmt: skip
        try:
            for size, size_ids in ids.items():
                etags = warm(base, key, size_ids)
                modes = {"uncached": "200 MISS"} if server == "uncached" else {
                    "cached": "200 HIT", "304": "304 HIT"}  # fmt: skip
                for mode, expect in modes.items():
                    for inflight in args.points:
                        spec = {"base": base, "op": "response", "floor": False, "key": key,
                                "ids": size_ids, "inflight": inflight, "expect": expect,
                                "etags": etags if mode == "304" else {},
                                "seconds": args.seconds, "warmup": args.warmup}  # fmt: skip
                        spy = None
                        if args.profile and server == "cached" and size in PROFILED and (
                                inflight == max(args.points)):  # fmt: skip
                            args.profile.mkdir(parents=True, exist_ok=True)
                            raw = args.profile / f"{mode}.raw"
                            spy = record_profile(process.pid, args.seconds, raw)
                        row = {"size": size, "mode": mode, "inflight": inflight, **run_point(spec)}
                        if spy is not None:
                            spy.wait(timeout=120)
                            what = f"{size} {mode} reads at {inflight} in flight"
                            profiles.append(profile_text(raw, what))
                        rows.append(row)
                        print(orjson.dumps(row).decode(), flush=True)
        finally:
            stop(process)
    section = report(rows, args, profiles)
    print(section)
    if not args.no_write:
        write_section(MARK, section)


if __name__ == "__main__":
    main()
