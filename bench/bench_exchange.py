"""Export and import of requests and results on PostgreSQL, next to the floors of the same run.

    uv run python bench/bench_exchange.py [--sizes 10000 100000 1000000]
        [--result-sizes 10000 100000] [--no-write]

For each size: two throwaway databases (`ferry_bench_request`, `ferry_bench_response`,
dropped at the end) are created and migrated; N pending requests (and their `submitted`
events) are seeded server-side; then each step runs as the beat job runs it
(`request_network.jobs.export`, `response_network.jobs.import_inbox`, ...), each in a
fresh child process that reports its wall time, CPU time and peak RSS
(`resource.getrusage(...).ru_maxrss`). Between the steps the batch files are copied from
one outbox to the other inbox, as an operator would, and the receiving database is
vacuumed, as autovacuum would while the files travel. `--profile DIR` runs each step
under py-spy (wall clock, idle included) and keeps its samples in DIR. For the result
steps every imported request gets a DONE result with three hits.

Floors, measured in the same run on the same data: `sha256sum` and `cp` of the batch files
(each timed with its process start), a raw `COPY (SELECT the exported columns) TO STDOUT`
into a file, and a raw `COPY … FROM STDIN` of the imported rows into a scratch table made
`LIKE` the target table (its columns and indexes; no foreign key).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
ADMIN_URL = os.environ.get(
    "FERRY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DBS = {"request": "ferry_bench_request", "response": "ferry_bench_response"}


def db_url(net: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_URL).set(database=DBS[net]).render_as_string(hide_password=False)


def libpq_url(net: str) -> str:
    return db_url(net).replace("postgresql+psycopg://", "postgresql://")


# -- the child: one job, measured ------------------------------------------------------


def settings_for(net: str, work: Path):
    from request_network.settings import RequestSettings
    from response_network.settings import ResponseSettings

    cls = RequestSettings if net == "request" else ResponseSettings
    peer = "response" if net == "request" else "request"
    return cls(
        mode="demo",
        database_url=db_url(net),
        redis_url="fakeredis://",
        transfer_dir=work / net,
        signing_key=work / "keys" / net / f"{net}.ed25519.pem",
        peer_public_keys=[work / "keys" / peer],
    )


def child(step: str, work: Path) -> None:
    import request_network.jobs as rq_jobs
    import response_network.jobs as rs_jobs
    from transfer.protocol import pgarrays

    in_sql = [0.0]  # seconds PostgreSQL spent on the bulk statements (some run behind)
    by_statement: dict[str, float] = {}  # the same, by the statement's first words
    run = pgarrays._run

    def timed_run(connection, query, params):
        start = time.perf_counter()
        try:
            return run(connection, query, params)
        finally:
            spent = time.perf_counter() - start
            in_sql[0] += spent
            text = query if isinstance(query, str) else query.as_string(connection)
            key = " ".join(text.split()[:4])[:60]
            by_statement[key] = by_statement.get(key, 0.0) + spent

    pgarrays._run = timed_run

    jobs = {
        "export_requests": lambda: rq_jobs.export(settings_for("request", work)),
        "import_requests": lambda: rs_jobs.import_inbox(settings_for("response", work)),
        "export_results": lambda: rs_jobs.export(settings_for("response", work)),
        "import_results": lambda: rq_jobs.import_inbox(settings_for("request", work)),
    }
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = jobs[step]()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    files = result.get("files", result.get("batches", []))
    records = sum(f.get("records", 0) for f in files)
    bad = [f for f in files if f.get("status") not in (None, "imported")]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                "bulk_sql": in_sql[0],
                "bulk_sql_by": {k: round(v, 2) for k, v in by_statement.items()},
                "baseline_mb": baseline / 1024,
                "peak_mb": after.ru_maxrss / 1024,
                "files": len(files),
                "records": records,
                "bad": bad[:3],
            }
        )
    )


PROFILE: Path | None = None  # --profile: where py-spy writes each step's samples


def run_child(step: str, work: Path) -> dict:
    load = os.getloadavg()[0]
    command = [sys.executable, __file__, "--child", step, "--work", str(work)]
    if PROFILE is not None:  # wall-clock samples (idle included), one file per step and size
        PROFILE.mkdir(parents=True, exist_ok=True)
        out = PROFILE / f"{step}-{len(list(PROFILE.glob(step + '-*')))}.txt"
        spy = [str(Path(sys.executable).with_name("py-spy")), "record", "--idle", "--rate", "200"]
        command = [*spy, "--format", "raw", "--output", str(out), "--", *command]
    done = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    printed = [line for line in done.stdout.splitlines() if line.startswith("{")]
    measured = json.loads(printed[-1])  # py-spy, if it runs the step, prints lines too
    if measured["bad"]:
        raise RuntimeError(f"{step}: {measured['bad']}")
    return {**measured, "load": load}


# -- databases, data and floors ---------------------------------------------------------


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql)


def fresh_databases() -> None:
    from shared.migrate import upgrade

    for net, name in DBS.items():
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin(f'CREATE DATABASE "{name}"')
        upgrade(net, db_url(net))


def drop_databases() -> None:
    for name in DBS.values():
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sql(net: str, *statements: str, autocommit: bool = False, **params: object) -> None:
    import psycopg

    with psycopg.connect(libpq_url(net), autocommit=autocommit) as conn:
        for statement in statements:
            conn.execute(
                statement, {k: v for k, v in params.items() if f"%({k})s" in statement} or None
            )


def seed_requests(n: int) -> None:
    """N pending requests of 100 users, random UUIDs, a millisecond apart, each with a
    correlation id like those the API makes, with their event and their outbox entry (as
    `request_network.services.requests.submit` leaves them)."""
    sql(
        "request",
        "INSERT INTO profile_types (name, index, fields, return_fields, max_size, rate_limits,"
        " version, updated_at) VALUES ('articles', 'articles', '{\"title\": \"text\"}',"
        ' \'["title"]\', 50, \'{"minute": 10, "hour": 100, "day": 1000}\', 1, now())',
        "INSERT INTO users (id, username, password_hash, role, profile_type, active, version,"
        " updated_at, synced_at) SELECT 'u-' || i, 'user' || i, 'x', 'user', 'articles', true,"
        " 1, now(), now() FROM generate_series(0, 99) i",
        "INSERT INTO requests (id, user_id, profile_type, query, status, created_at, updated_at,"
        " correlation_id)"
        " SELECT md5(i::text)::uuid::text, 'u-' || mod(i, 100), 'articles',"
        " json_build_object('query', json_build_object('match', json_build_object("
        "'field', 'title', 'value', 'ferry ' || i)), 'size', 10),"
        " 'PENDING', t, t, md5('c' || i) FROM generate_series(1, %(n)s) i,"
        " LATERAL (SELECT timestamptz '2026-11-23 00:00:00+00'"
        " + i * interval '1 millisecond' AS t) AS ts",
        "INSERT INTO request_events (request_id, status, at, detail)"
        " SELECT id, 'PENDING', created_at, 'submitted' FROM requests",
        "INSERT INTO request_outbox (request_id, user_id, profile_type, query, submitted_at,"
        " correlation_id)"
        " SELECT id, user_id, profile_type, query, created_at, correlation_id FROM requests"
        " ORDER BY created_at, id",
        n=n,
    )
    sql("request", "VACUUM ANALYZE", autocommit=True)


def seed_results() -> None:
    """A DONE result with three hits for every imported request."""
    hit = (
        "json_build_object('id', id || '-{k}', 'score', 1.5, 'source', json_build_object("
        "'title', 'Ferry crossing ' || id, 'year', 2020))"
    )
    hits = ", ".join(hit.format(k=k) for k in range(3))
    sql(
        "response",
        "INSERT INTO results (request_id, status, total, hits, error, executed_at, took_ms,"  # noqa: S608 - constants only
        " correlation_id)"
        f" SELECT id, 'DONE', 3, json_build_array({hits}), NULL,"
        " submitted_at + interval '1 second', 4, correlation_id FROM imported_requests",
        "UPDATE imported_requests SET status = 'DONE'",
    )
    sql("response", "VACUUM ANALYZE", autocommit=True)


def settle(net: str) -> None:
    """What autovacuum does while an operator carries the files (hours in a deployment):
    the rows the export removed (the request outbox) are vacuumed away before the other
    side's answers arrive, and the statistics are fresh."""
    sql(net, "VACUUM ANALYZE", autocommit=True)


def pg_version() -> str:
    import psycopg

    with psycopg.connect(ADMIN_URL.replace("+psycopg", "")) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def carry(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in sorted(src.glob("*.jsonl*")):
        shutil.copy2(f, dst / f.name)
        if f.name.endswith(".jsonl"):
            copied.append(dst / f.name)
    return copied


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def copy_out(net: str, query: str, path: Path) -> float:
    import psycopg

    def run() -> None:
        with (
            psycopg.connect(libpq_url(net)) as conn,
            open(path, "wb") as out,
            conn.cursor().copy(f"COPY ({query}) TO STDOUT") as copy,
        ):
            for block in copy:
                out.write(block)

    return timed(run)


def copy_in(net: str, like: str, path: Path) -> float:
    import psycopg

    with psycopg.connect(libpq_url(net), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_scratch")
        conn.execute(f"CREATE TABLE bench_scratch (LIKE {like} INCLUDING ALL)")

    def run() -> None:
        with (
            psycopg.connect(libpq_url(net)) as conn,
            open(path, "rb") as source,
            conn.cursor().copy("COPY bench_scratch FROM STDIN") as copy,
        ):
            while block := source.read(1 << 20):
                copy.write(block)

    seconds = timed(run)
    sql(net, "DROP TABLE bench_scratch", autocommit=True)
    return seconds


def marking_floor(batch: int = 10_000) -> float:
    """The export's database work alone, in SQL with no Python work: read and lock the whole
    outbox (`FOR UPDATE SKIP LOCKED`, as the export reads it), then per batch of ids the very
    statement that marks them (out of the outbox, into `request_exports`). Rolled back."""
    import psycopg

    with psycopg.connect(libpq_url("request")) as conn:
        start = time.perf_counter()
        cursor = conn.cursor(name="floor")
        cursor.execute(
            "SELECT seq, request_id, user_id, profile_type, query::text, submitted_at"
            " FROM request_outbox ORDER BY seq, request_id FOR UPDATE SKIP LOCKED"
        )
        conn.execute(
            "INSERT INTO batches (id, direction, stream, source, destination, seq, digest,"
            " filename, record_count, bytes, created_at) VALUES ('floor', 'out', 'requests',"
            " 'request', 'response', 1, '', 'floor', 0, 0, now())"
        )
        while seqs := [row[0] for row in cursor.fetchmany(batch)]:
            conn.cursor().execute(
                "WITH gone AS (DELETE FROM request_outbox WHERE seq = ANY(%b::bigint[])"
                " RETURNING request_id)"
                " INSERT INTO request_exports (request_id, batch_id, at)"
                " SELECT request_id, %b, now() FROM gone"
                " ON CONFLICT (request_id) DO UPDATE SET batch_id = excluded.batch_id,"
                " at = excluded.at",
                [seqs, "floor"],
            )
        seconds = time.perf_counter() - start
        conn.rollback()
    sql("request", "VACUUM ANALYZE", autocommit=True)
    return seconds


def file_floors(files: list[Path], work: Path) -> dict:
    names = [str(f) for f in files]
    dest = work / "cp-floor"
    dest.mkdir(exist_ok=True)
    sha = timed(lambda: subprocess.run(["sha256sum", *names], check=True, capture_output=True))
    cp = timed(lambda: subprocess.run(["cp", *names, str(dest)], check=True))
    shutil.rmtree(dest)
    return {"sha256sum": sha, "cp": cp, "bytes": sum(f.stat().st_size for f in files)}


# -- one size --------------------------------------------------------------------------


def run_size(n: int, with_results: bool) -> dict:
    from transfer.format.keys import generate_keypair

    row: dict = {"n": n}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        work = Path(tmp)
        for net in DBS:
            generate_keypair(work / "keys" / net, net)
        fresh_databases()
        try:
            seed_requests(n)
            row["marking_floor"] = marking_floor()
            row["export_requests"] = run_child("export_requests", work)
            sent = sorted((work / "request" / "outbox").glob("*.jsonl"))
            row["requests_files"] = file_floors(sent, work)
            row["requests_copy_out"] = copy_out(
                "request",
                "SELECT id, user_id, profile_type, query, created_at, correlation_id FROM requests",
                work / "requests.copy",
            )
            carry(work / "request" / "outbox", work / "response" / "inbox")
            settle("response")
            row["import_requests"] = run_child("import_requests", work)
            copy_out("response", "SELECT * FROM imported_requests", work / "imported.copy")
            row["requests_copy_in"] = copy_in(
                "response", "imported_requests", work / "imported.copy"
            )
            if with_results:
                seed_results()
                row["export_results"] = run_child("export_results", work)
                sent = sorted((work / "response" / "outbox").glob("results-*.jsonl"))
                row["results_files"] = file_floors(sent, work)
                row["results_copy_out"] = copy_out(
                    "response",
                    "SELECT request_id, status, total, hits, error, executed_at, took_ms,"
                    " correlation_id FROM results",
                    work / "results.copy",
                )
                carry(work / "response" / "outbox", work / "request" / "inbox")
                settle("request")
                row["import_results"] = run_child("import_results", work)
                copy_out("request", "SELECT * FROM responses", work / "responses.copy")
                row["results_copy_in"] = copy_in("request", "responses", work / "responses.copy")
        finally:
            drop_databases()
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--result-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    parser.add_argument("--rounds", type=int, default=1, help="runs per size; best kept")
    parser.add_argument(
        "--report-from", type=Path, nargs="+", help="logs of earlier runs: their rounds merged"
    )
    parser.add_argument("--command", help="the command line to cite (with --report-from)")
    parser.add_argument(
        "--profile", type=Path, help="run each step under py-spy, its samples in this directory"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work)
        return
    global PROFILE
    PROFILE = args.profile
    from exchange_report import best_of, report, write_section
    from perf_doc import cpu_model

    command = "uv run python bench/bench_exchange.py --sizes " + " ".join(map(str, args.sizes))
    command += " --result-sizes " + " ".join(map(str, args.result_sizes))
    command += f" --rounds {args.rounds}"
    if args.profile:
        command += f" --profile {args.profile}"
    if args.report_from:  # re-render what runs printed (their logs), without running again
        lines = [line for log in args.report_from for line in log.read_text().splitlines()]
        printed = [json.loads(line) for line in lines if line.startswith('{"n"')]
        loads = next((tuple(r["loads"]) for r in printed if "loads" in r), (0.0, 0.0))
        rounds = [r for r in printed if r["n"] and "rounds" not in r]
        sizes = sorted({r["n"] for r in rounds})
        rows = [best_of([r for r in rounds if r["n"] == n]) for n in sizes]
        command = args.command or command
    else:
        load_before = os.getloadavg()[0]
        rows = [
            best_of([run_size(n, n in args.result_sizes) for _ in range(args.rounds)])
            for n in args.sizes
        ]
        for row in rows:
            print(json.dumps(row), flush=True)
        loads = (load_before, os.getloadavg()[0])
        print(json.dumps({"n": 0, "loads": loads}), flush=True)
    rows = [r for r in rows if r["n"]]
    profiles = {}
    if args.profile:  # the last run of each result step: the largest size
        for step in ("export_results", "import_results"):
            runs = sorted(args.profile.glob(f"{step}-*.txt"), key=lambda p: p.stat().st_mtime)
            if runs:
                profiles[step] = runs[-1]
    section = report(
        rows, command, loads, pg_version=pg_version(), cpu=cpu_model(), profiles=profiles
    )
    print(section)
    if not args.no_write:
        write_section(section)


if __name__ == "__main__":
    main()
