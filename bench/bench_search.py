"""Running queued queries: one search call per query against Ferry's chunked msearch.

    uv run python bench/bench_search.py [--queries 10000] [--docs 100000]
        [--chunks 10 50 200 1000] [--repeats 2] [--batch 1000] [--profile]
        [--save run.json] [--before earlier.json] [--notes text.md] [--no-write]
    uv run python bench/bench_search.py --report-from run.log [--profile-from spy.raw] ...

An osmem-server of the bench's own holds the `articles` index of the demo profile type
(its mapping from the profile's fields) with N generated documents (seeded: the same every
run). Two throwaway databases (`ferry_bench_search_request`, `ferry_bench_search_response`,
dropped at the end) are created and migrated; the request network gets M requests (seeded
queries over titles, bodies, categories and years), its export job writes them to batch
files and the response network's import job imports them: M queued requests.

Each mode is the executor's job as the worker runs it (`response_network.jobs.execute`,
one claimed batch per call, called until the queue is empty), in a fresh child process
logging at INFO as a worker does (to /dev/null): claim, compile, search, record the
results in PostgreSQL, commit. Modes: the floor, a backend whose `run_many` makes one
`search` call per query (`OneByOne` below), and Ferry's `SearchBackend` (msearch) at each
chunk size. Between modes the queue is put back as the import left it (requests QUEUED,
results and executions gone, `VACUUM ANALYZE`); the modes take turns, in a rotated order,
for `--repeats` rounds, and each figure is the best of its rounds.

Server-side time: the server process's CPU time over the run (`/proc`), and the sum of the
`took` each search reported. Peak RSS: the child's high-water mark (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
ADMIN_URL = os.environ.get(
    "FERRY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DBS = {"request": "ferry_bench_search_request", "response": "ferry_bench_search_response"}
PROFILES = ROOT / "ferry" / "demo_data" / "profile_types.json"
MARK = "<!-- bench_search -->"
ONE_BY_ONE = "one-by-one"
TARGET = 5.0  # × the one-by-one rate, at the best chunk size
SEED = 20


def words(text: str) -> list[str]:
    return text.split()


THINGS = words(
    "harbour lighthouse tugboat ferry pier dock canal bridge schooner quay lock estuary "
    "channel tide storm cargo crew timetable terminal slipway breakwater beacon buoy hull "
    "anchor mooring ropeway ferryman crossing voyage"
)
PLACES = words(
    "Calais Bergen Aarhus Dover Rotterdam Hamburg Gdansk Riga Tallinn Helsinki Stockholm "
    "Oslo Kiel Antwerp Dublin Belfast Cork Plymouth Bilbao Porto Lisbon Cadiz Marseille "
    "Genoa Naples Piraeus Split Trieste Valletta Tangier Reykjavik Torshavn Lerwick Kirkwall "
    "Oban Stranraer Holyhead Fishguard Rosslare Esbjerg"
)
CATEGORIES = words("engineering travel weather history economics law safety culture")
WORDS = words("schedules cargo crews repairs tolls passengers winter routes engines wages")


# -- data ------------------------------------------------------------------------------


def documents(n: int) -> Any:
    """N articles like the demo's, the same every run."""
    rng = random.Random(SEED)
    for i in range(n):
        thing, place, year = rng.choice(THINGS), rng.choice(PLACES), rng.randint(1900, 2025)
        title = rng.choice(
            (
                f"The {thing} of {place}",
                f"{place} {thing} in {year}",
                f"Notes on the {thing} at {place}",
                f"A history of the {place} {thing}",
            )
        )
        words = " ".join(rng.sample(WORDS, 3))
        yield {
            "id": f"a{i:07d}",
            "title": title,
            "category": rng.choice(CATEGORIES),
            "year": year,
            "published": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "body": f"A report on the {thing} at {place}, written in {year}. Notes on {words}.",
        }


def queries(n: int) -> list[dict]:
    """N query specs a user of the demo profile type could send, the same every run: each
    narrows by two or three conditions (a hundred to a few hundred matches of 100,000)."""
    rng = random.Random(SEED + 1)

    def match(field: str, value: str) -> dict:
        return {"match": {"field": field, "value": value}}

    def years(low: int, span: int) -> dict:
        return {"range": {"field": "year", "gte": low, "lte": low + span}}

    def one() -> dict:
        thing, place, cat = rng.choice(THINGS), rng.choice(PLACES), rng.choice(CATEGORIES)
        year = rng.randint(1900, 2015)
        category = {"term": {"field": "category", "value": cat}}
        kind = rng.randrange(6)
        if kind == 0:
            query, size = {"all": [match("title", thing), match("title", place)]}, 10
        elif kind == 1:
            query, size = {"all": [match("title", thing), years(year, 10)]}, 50
        elif kind == 2:
            query, size = {"all": [category, years(year, 2)]}, 20
        elif kind == 3:
            query, size = {"all": [category, match("title", place)]}, 25
        elif kind == 4:
            query = {"all": [category, match("body", rng.choice(WORDS)), match("title", place)]}
            return {"query": query, "size": 10, "fields": ["title", "year"]}
        else:
            query, size = {"all": [match("title", thing), years(2015, 10)]}, 5
        spec: dict = {"query": query, "size": size}
        if kind in (1, 2):
            spec["sort"] = [{"field": "year", "order": "asc" if kind == 1 else "desc"}]
        return spec

    return [one() for _ in range(n)]


# -- the floor: one search call per query ------------------------------------------------


def one_by_one_backend(client: Any) -> Any:
    """A `SearchBackend` whose `run_many` makes one `search` call per query: the same
    server-side timeout, the same outcomes, errors per search (the floor of this bench)."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from response_network.services import search

    class OneByOne(search.SearchBackend):
        def run_many(self, searches, *, chunk_size=50, timeout_s=30.0):
            server_timeout = f"{max(1, int(timeout_s * 1000 * search._SERVER_TIMEOUT_SHARE))}ms"
            client = self.client.options(request_timeout=timeout_s)
            outcomes = []
            for index, body in searches:
                try:
                    response = client.search(index=index, body={"timeout": server_timeout, **body})
                except (ApiError, TransportError) as exc:
                    outcomes.append(search.SearchOutcome.failed(search._describe_exception(exc)))
                    continue
                outcomes.append(search._outcome(response.body))
            return outcomes

    return OneByOne(client)


# -- the child: one mode, measured -------------------------------------------------------


def response_settings(work: Path, search_url: str = "", chunk: int = 50, batch: int = 500):
    from response_network.settings import ResponseSettings

    return ResponseSettings(
        mode="demo",
        database_url=db_url("response"),
        redis_url="fakeredis://",
        transfer_dir=work / "response",
        signing_key=work / "keys" / "response" / "response.ed25519.pem",
        peer_public_keys=[work / "keys" / "request"],
        elasticsearch_url=search_url or "http://127.0.0.1:9200",
        compat_headers=False,
        msearch_chunk=chunk,
        execute_batch=batch,
    )


def child(mode: str, chunk: int, batch: int, work: Path, search_url: str) -> None:
    from response_network import jobs
    from response_network.services.search import make_client
    from shared.logs import configure_logging

    configure_logging("INFO", stream=open(os.devnull, "w"))  # noqa: SIM115 - the process's
    settings = response_settings(work, search_url, max(chunk, 1), batch)
    client = make_client(search_url, compat_headers=False, timeout=settings.search_timeout_s)
    backend = one_by_one_backend(client) if mode == ONE_BY_ONE else jobs.backend_for(settings)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    totals: Counter[str] = Counter()
    calls = 0
    while True:
        report = jobs.execute(settings, backend)
        calls += 1
        totals.update(report)
        if not report["done"] + report["failed"] + report["deferred"]:
            break
        if report["deferred"] and not report["done"] + report["failed"]:
            raise RuntimeError(f"the search server did not answer: {report}")
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "calls": calls,
                "baseline_mb": baseline / 1024,
                "peak_mb": after.ru_maxrss / 1024,
                **totals,
            }
        )
    )


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_mode(mode: str, chunk: int, args: argparse.Namespace, env: dict, spy: Path | None = None):
    command = [sys.executable, __file__, "--child", mode, "--chunk", str(chunk)]
    command += ["--batch", str(args.batch), "--work", str(env["work"]), "--url", env["url"]]
    if spy is not None:
        py_spy = str(Path(sys.executable).parent / "py-spy")
        command = [py_spy, "record", "--format", "raw", "--idle", "--rate", "250"]
        command += ["--nonblocking", "-o", str(spy), "--", sys.executable, __file__]
        command += ["--child", mode, "--chunk", str(chunk), "--batch", str(args.batch)]
        command += ["--work", str(env["work"]), "--url", env["url"]]
    load = os.getloadavg()[0]
    cpu_before = server_cpu(env["pid"])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{mode} {chunk} failed:\n{done.stderr[-3000:]}")
    printed = [line for line in done.stdout.splitlines() if line.startswith("{")]
    measured = json.loads(printed[-1])  # py-spy, when it runs the child, prints after it
    measured |= {"server_cpu": server_cpu(env["pid"]) - cpu_before, "load": load}
    measured |= stored()
    if measured["done"] + measured["failed"] != args.queries or measured["stored"] != args.queries:
        raise RuntimeError(f"{mode} {chunk}: not every query ran and was stored: {measured}")
    reset_queue()
    return {"mode": mode, "chunk": chunk, **measured}


# -- databases -------------------------------------------------------------------------


def db_url(net: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_URL).set(database=DBS[net]).render_as_string(hide_password=False)


def connect(net: str | None = None, autocommit: bool = False):
    import psycopg

    url = db_url(net) if net else ADMIN_URL
    return psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=autocommit
    )


def fresh_databases() -> None:
    from shared.migrate import upgrade

    with connect(autocommit=True) as conn:
        for net, name in DBS.items():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
            upgrade(net, db_url(net))


def drop_databases() -> None:
    with connect(autocommit=True) as conn:
        for name in DBS.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_requests(specs: list[dict]) -> None:
    """The requests as `request_network.services.requests.submit` leaves them: row, event,
    outbox entry; 100 users, a millisecond apart."""
    profile = json.loads(PROFILES.read_text())[0]
    with connect("request") as conn:
        conn.execute(
            "INSERT INTO profile_types (name, index, fields, return_fields, max_size,"
            " rate_limits, version, updated_at) VALUES (%s, %s, %s, %s, %s, %s, 1, now())",
            [
                profile["name"],
                profile["index"],
                json.dumps(profile["fields"]),
                json.dumps(profile["return_fields"]),
                profile["max_size"],
                json.dumps(profile["rate_limits"]),
            ],
        )
        conn.execute(
            "INSERT INTO users (id, username, password_hash, role, profile_type, active, version,"
            " updated_at, synced_at) SELECT 'u-' || i, 'user' || i, 'x', 'user', 'articles',"
            " true, 1, now(), now() FROM generate_series(0, 99) i"
        )
        conn.execute(
            "INSERT INTO requests (id, user_id, profile_type, query, status, created_at,"
            " updated_at, correlation_id)"
            " SELECT md5(i::text)::uuid::text, 'u-' || mod(i, 100), 'articles', q::json,"
            " 'PENDING', t, t, md5('c' || i)"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS s(q, i),"
            " LATERAL (SELECT timestamptz '2026-12-01 00:00:00+00'"
            " + i * interval '1 millisecond' AS t) AS ts",
            [[json.dumps(s) for s in specs]],
        )
        conn.execute(
            "INSERT INTO request_events (request_id, status, at, detail)"
            " SELECT id, 'PENDING', created_at, 'submitted' FROM requests"
        )
        conn.execute(
            "INSERT INTO request_outbox (request_id, user_id, profile_type, query, submitted_at,"
            " correlation_id) SELECT id, user_id, profile_type, query, created_at,"
            " correlation_id FROM requests ORDER BY created_at, id"
        )


def request_settings(work: Path):
    from request_network.settings import RequestSettings

    return RequestSettings(
        mode="demo",
        database_url=db_url("request"),
        redis_url="fakeredis://",
        transfer_dir=work / "request",
        signing_key=work / "keys" / "request" / "request.ed25519.pem",
        peer_public_keys=[work / "keys" / "response"],
    )


def import_queue(n: int, work: Path) -> dict:
    """Seed, export (request network), carry, import (response network): n queued requests."""
    import request_network.jobs as rq_jobs
    import response_network.jobs as rs_jobs
    from response_network.services.identity import load_profile_types
    from shared.db import transaction
    from transfer.format.keys import generate_keypair

    for net in DBS:
        generate_keypair(work / "keys" / net, net)
    with transaction(db_url("response")) as session:
        load_profile_types(PROFILES, session=session, actor="bench")
    seed_requests(queries(n))
    start = time.perf_counter()
    rq_jobs.export(request_settings(work))
    exported = time.perf_counter() - start
    inbox = work / "response" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for f in sorted((work / "request" / "outbox").glob("*.jsonl*")):
        shutil.copy2(f, inbox / f.name)
    start = time.perf_counter()
    imported = rs_jobs.import_inbox(response_settings(work))
    seconds = time.perf_counter() - start
    records = sum(f.get("records", 0) for f in imported["files"])
    with connect("response") as conn:
        queued = conn.execute(
            "SELECT count(*) FROM imported_requests WHERE status = 'QUEUED'"
        ).fetchone()[0]
    if queued != n:
        raise RuntimeError(f"{queued} of {n} requests queued after the import: {imported}")
    reset_queue()
    return {"export_s": exported, "import_s": seconds, "records": records}


def stored() -> dict:
    with connect("response") as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'DONE'), coalesce(sum(total), 0),"
            " coalesce(sum(took_ms), 0), coalesce(sum(json_array_length(hits)), 0)"
            " FROM results"
        ).fetchone()
    return dict(
        zip(("stored", "stored_done", "total_hits", "took_ms", "hits_kept"), row, strict=True)
    )


def reset_queue() -> None:
    """The queue as the import left it: every request QUEUED, no result, no execution."""
    with connect("response") as conn:
        conn.execute("DELETE FROM results")
        conn.execute("DELETE FROM executions")
        conn.execute("UPDATE imported_requests SET status = 'QUEUED', updated_at = imported_at")
    with connect("response", autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def pg_version() -> str:
    with connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


# -- the search server -----------------------------------------------------------------


def start_server(n_docs: int) -> tuple[Any, dict]:
    from osmem_server import OsmemServer

    from response_network.services.search import SearchBackend, make_client

    profile = json.loads(PROFILES.read_text())[0]
    kinds = {"text": "text", "keyword": "keyword", "integer": "integer", "date": "date"}
    mappings = {"properties": {"id": {"type": "keyword"}}}
    mappings["properties"] |= {f: {"type": kinds[k]} for f, k in profile["fields"].items()}
    server = OsmemServer.start()
    client = make_client(server.url, compat_headers=False, timeout=300)
    client.indices.create(index=profile["index"], mappings=mappings)
    start = time.perf_counter()
    with SearchBackend(client) as backend:
        loaded = backend.bulk_load(profile["index"], documents(n_docs))
    return server, {"docs": loaded, "load_s": time.perf_counter() - start}


def server_rss_mb(pid: int) -> tuple[float, float]:
    """(now, peak) resident size of the server process, MB."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


# -- profile ---------------------------------------------------------------------------


JOB = "execute (response_network/jobs.py)"
OURS = "(response_network/"  # Ferry's own frames, and the calls out that matter:
KEY = (
    "HTTPConnection.getresponse (http/client.py)",  # waiting for the search server
    "Elasticsearch.msearch",
    "Elasticsearch.search",
    "Session.execute ",
    "Session.get ",
    "Session.flush ",
    "Session.commit ",
    "Logger.info ",
)


def profile_top(raw: Path, top: int = 16) -> tuple[list, list, int]:
    """Own and inclusive samples per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = []
        for f in stack.split(";"):
            name, _, where = f.partition(" (")
            frames.append(f"{name} ({where.split(':')[0].removesuffix(')')})" if where else f)
        job = [i for i, f in enumerate(frames) if f.startswith(JOB)]
        if not job:  # not the timed loop (starting up, importing)
            continue
        frames = frames[job[0] :]
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    ours = [(f, n) for f, n in inclusive.most_common() if f.startswith(KEY) or OURS in f]
    return own.most_common(10), ours[:top], total


def profile_table(raw: Path, label: str) -> str:
    own, inclusive, total = profile_top(raw)
    lines = [
        f"py-spy of {label}, {total} samples of the executor's job (`py-spy record --idle` "
        "at 250 Hz: waiting counts too, so this is where the wall time goes; start-up and "
        "imports left out; own = the innermost frame; inclusive = anywhere on the stack, Ferry's "
        "functions and the calls out: the search server's answer awaited, the search client, "
        "SQLAlchemy, logging):",
        "",
        "| own | samples | % | inclusive | samples | % |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for (fo, no), (fi, ni) in zip_longest(own, inclusive, fillvalue=("", 0)):
        left = f"`{fo}` | {no} | {100 * no / total:.0f}" if fo else " | |"
        lines.append(f"| {left} | `{fi}` | {ni} | {100 * ni / total:.1f} |")
    return "\n".join(lines)


# -- report ----------------------------------------------------------------------------


def label(row: dict) -> str:
    return ONE_BY_ONE if row["mode"] == ONE_BY_ONE else f"msearch, chunk {row['chunk']}"


def best_of(rows: list[dict]) -> list[dict]:
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["mode"], r["chunk"])
        if key not in best or r["seconds"] < best[key]["seconds"]:
            best[key] = r | {"runs": sum(1 for x in rows if (x["mode"], x["chunk"]) == key)}
    return sorted(best.values(), key=lambda r: (r["mode"] != ONE_BY_ONE, r["chunk"]))


def table(rows: list[dict], n: int) -> list[str]:
    floor = next(r for r in rows if r["mode"] == ONE_BY_ONE)
    lines = [
        "| mode | runs | s | queries/s | one-by-one s (floor) | one-by-one queries/s | ratio "
        "| CPU s | server CPU s | server took s | peak RSS MB | load |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {label(r)} | {r['runs']} | {r['seconds']:.2f} | {n / r['seconds']:,.0f} "
            f"| {floor['seconds']:.2f} | {n / floor['seconds']:,.0f} "
            f"| {floor['seconds'] / r['seconds']:.2f}× | {r['cpu']:.1f} | {r['server_cpu']:.1f} "
            f"| {r['took_ms'] / 1000:.1f} | {r['peak_mb']:.0f} / {r['baseline_mb']:.0f} "
            f"| {r['load']:.1f} |"
        )
    return lines


def report(run: dict, before: dict | None) -> str:
    rows, n, docs = run["rows"], run["queries"], run["server"]["docs"]
    floor = next(r for r in rows if r["mode"] == ONE_BY_ONE)
    best = min((r for r in rows if r["mode"] != ONE_BY_ONE), key=lambda r: r["seconds"])
    ratio = floor["seconds"] / best["seconds"]
    verdict = "met" if ratio >= TARGET else "not met"
    lines = [
        MARK,
        "## Query execution: msearch chunks against one search call per query",
        "",
        f"Machine: {run['cpu']}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, PostgreSQL {run['pg']} and osmem-server "
        f"{run['server']['version']} on the same host; load average {run['loads'][0]:.1f} "
        f"before and {run['loads'][1]:.1f} after the run (a shared machine: other work was "
        f"running). Date: {run['date']}. Command: `{run['command']}`.",
        "",
        f"{n:,} queued requests, run against {docs:,} documents (the demo's `articles` "
        "profile type and mapping, generated titles, bodies, categories and years, seeded). "
        "The queue is made the real way: the requests are seeded in the request network, "
        f"its export job writes them ({run['import']['export_s']:.1f} s) and the response "
        f"network's import job imports them ({run['import']['import_s']:.1f} s, "
        f"{run['import']['records']:,} records; not part of the figures below). Each mode "
        "then empties the queue through the executor's job (`response_network.jobs.execute`: "
        f"claim up to {run['batch']:,} requests and commit, compile each query against its "
        "profile type, search, store every result with its hits and the execution, commit), "
        "called until nothing is left, in a fresh process that logs one INFO line per "
        "request as a worker does (to /dev/null). *one-by-one* is the floor: the same job "
        "with a backend making one `search` call per query (`OneByOne` in the bench); "
        "*msearch* is Ferry's `SearchBackend` at `msearch_chunk` = the chunk size. Between "
        "modes the queue is put back as the import left it (`VACUUM ANALYZE` included); the "
        f"modes take turns in a rotated order over {run['repeats']} round(s) and each figure "
        "is the best of its rounds (runs column). Ratio = one-by-one seconds ÷ the mode's. "
        "CPU s is the executor process's own; server CPU s the search server's over the same "
        "run (`/proc`), server took s the sum of the `took` each search reported. Peak RSS is "
        "the executor process's high-water mark, after the slash before its first batch "
        f"(the search server holding the index: {run['server']['rss_mb']:.0f} MB, peak "
        f"{run['server']['hwm_mb']:.0f} MB). Every run stored {n:,} results "
        f"({floor['stored_done']:,} DONE, {floor['hits_kept']:,} hits kept, the same in "
        "every mode).",
        "",
        *table(rows, n),
        "",
        f"Target (≥ {TARGET:g}× one-by-one at the best chunk size) **{verdict}**: "
        f"{label(best)} ran {n:,} queries in {best['seconds']:.2f} s ({n / best['seconds']:,.0f}"
        f"/s) against {floor['seconds']:.2f} s ({n / floor['seconds']:,.0f}/s) one by one, "
        f"{ratio:.2f}×.",
    ]
    if run.get("notes"):
        lines += ["", run["notes"]]
    if run.get("profile"):
        lines += ["", run["profile"]]
    if before:
        lines += [
            "",
            f"### Before: the executor as it was ({before['date']}, the same rounds and data)",
            "",
            *table(before["rows"], before["queries"]),
        ]
        if before.get("profile"):
            lines += ["", before["profile"]]
    if run.get("after_notes"):
        lines += ["", run["after_notes"]]
    lines.append(MARK)
    return "\n".join(lines) + "\n"


# -- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, nargs="+", default=[10, 50, 200, 1000])
    parser.add_argument("--repeats", type=int, default=2, help="rounds; best kept")
    parser.add_argument(
        "--batch", type=int, default=1000, help="execute_batch: requests claimed per job call"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy of the best mode, once")
    parser.add_argument("--profile-chunk", type=int, help="profile this chunk size instead")
    parser.add_argument(
        "--profile-out", type=Path, default=Path(tempfile.gettempdir()) / "bench_search.raw"
    )
    parser.add_argument("--profile-from", type=Path, help="py-spy raw output of an earlier run")
    parser.add_argument("--report-from", type=Path, nargs="+", help="logs of earlier runs")
    parser.add_argument("--save", type=Path, help="the run as JSON, for --before later")
    parser.add_argument("--before", type=Path, help="an earlier run's JSON, shown as before")
    parser.add_argument("--notes", type=Path, help="text put under the table")
    parser.add_argument("--after-notes", type=Path, help="text put at the end of the section")
    parser.add_argument("--command", help="the command line to cite (with --report-from)")
    parser.add_argument("--profile-label", default="the best mode (one run)")
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.chunk, args.batch, args.work, args.url)
        return
    from perf_doc import write_section

    command = "uv run python bench/bench_search.py " + " ".join(sys.argv[1:])
    # with --report-from, re-render what earlier runs printed (their logs)
    run = from_logs(args) if args.report_from else measure(args, command)
    if args.profile_from:
        run["profile"] = profile_table(args.profile_from, args.profile_label)
    run["notes"] = args.notes.read_text().strip() if args.notes else ""
    run["after_notes"] = args.after_notes.read_text().strip() if args.after_notes else ""
    if args.save:
        args.save.write_text(json.dumps(run, indent=1))
    if not run["rows"]:
        return
    before = json.loads(args.before.read_text()) if args.before else None
    section = report(run, before)
    print(section)
    if not args.no_write:
        write_section(MARK, section)


def from_logs(args: argparse.Namespace) -> dict:
    from perf_doc import cpu_model

    printed = [
        json.loads(line)
        for log in args.report_from
        for line in log.read_text().splitlines()
        if line.startswith("{")
    ]
    first = {k: v for p in printed for k, v in p.items() if k in ("server", "import", "run")}
    rows = [p for p in printed if "mode" in p and not p.get("profiled")]
    meta = first.get("run", {})
    return {
        "date": meta.get("date", f"{datetime.now(UTC):%Y-%m-%d}"),
        "command": args.command or meta.get("command", ""),
        "cpu": cpu_model(),
        "pg": pg_version(),
        "queries": meta.get("queries", args.queries),
        "batch": meta.get("batch", args.batch),
        "repeats": max(Counter((r["mode"], r["chunk"]) for r in rows).values()),
        "loads": [rows[0]["load"], meta.get("load_after", rows[-1]["load"])],
        "server": first["server"],
        "import": first["import"],
        "rows": best_of(rows),
        "profile": "",
    }


def measure(args: argparse.Namespace, command: str) -> dict:
    from perf_doc import cpu_model

    loads = [os.getloadavg()[0]]
    meta = {"date": f"{datetime.now(UTC):%Y-%m-%d}", "command": command}
    meta |= {"queries": args.queries, "batch": args.batch}
    print(json.dumps({"run": meta}), flush=True)
    server, loaded = start_server(args.docs)
    modes = [(ONE_BY_ONE, 0)] + [("msearch", c) for c in args.chunks]
    rows: list[dict] = []
    try:
        rss, hwm = server_rss_mb(server.pid)
        loaded |= {"version": server.version, "rss_mb": rss, "hwm_mb": hwm}
        print(json.dumps({"server": loaded}), flush=True)
        with tempfile.TemporaryDirectory(prefix="ferry-bench-search-") as tmp:
            env = {"work": Path(tmp), "url": server.url, "pid": server.pid}
            fresh_databases()
            try:
                imported = import_queue(args.queries, env["work"])
                print(json.dumps({"import": imported}), flush=True)
                for r in range(args.repeats):
                    for mode, chunk in modes[r % len(modes) :] + modes[: r % len(modes)]:
                        rows.append(run_mode(mode, chunk, args, env))
                        print(json.dumps(rows[-1]), flush=True)
                profile = ""
                if args.profile:
                    tried = [r for r in rows if r["mode"] != ONE_BY_ONE]
                    chunk = args.profile_chunk or min(tried, key=lambda r: r["seconds"])["chunk"]
                    done = run_mode("msearch", chunk, args, env, spy=args.profile_out)
                    print(json.dumps(done | {"profiled": True}), flush=True)
                    profile = profile_table(args.profile_out, f"msearch, chunk {chunk} (one run)")
            finally:
                drop_databases()
        rss, hwm = server_rss_mb(server.pid)
        loaded |= {"rss_mb": rss, "hwm_mb": hwm}
    finally:
        server.close()
    loads.append(os.getloadavg()[0])
    print(json.dumps({"run": meta | {"load_after": loads[1]}}), flush=True)
    return {
        **meta,
        "cpu": cpu_model(),
        "pg": pg_version(),
        "queries": args.queries,
        "batch": args.batch,
        "repeats": args.repeats,
        "loads": loads,
        "server": loaded,
        "import": imported,
        "rows": best_of(rows),
        "profile": profile,
    }


if __name__ == "__main__":
    main()
