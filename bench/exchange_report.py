"""The docs/PERFORMANCE.md section of `bench/bench_exchange.py`, from the rows a run measured."""

from __future__ import annotations

import os
import platform
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import perf_doc

MARK = "<!-- bench_exchange -->"
TARGET_S = 30.0  # export and import of 1 M requests each (issue 4)
TARGET_COPY = 3.0  # 1 M results out and in, each within this many times its COPY (issue 20)

STEPS = (
    ("export_requests", "requests", "export requests", "requests_copy_out", "COPY TO"),
    ("import_requests", "requests", "import requests", "requests_copy_in", "COPY FROM"),
    ("export_results", "results", "export results", "results_copy_out", "COPY TO"),
    ("import_results", "results", "import results", "results_copy_in", "COPY FROM"),
)

HOW = (
    "Each step is the beat job as deployed (`request_network.jobs.export`, "
    "`response_network.jobs.import_inbox`, `response_network.jobs.export`, "
    "`request_network.jobs.import_inbox`), run in a fresh process with the default limits "
    "(10,000 records and 64 MiB per batch). The exports stream the rows from the database "
    "straight into batch files and mark each batch's rows with one bulk statement. Requests: "
    "one server-side cursor, `FOR UPDATE SKIP LOCKED`; the batch's rows leave the outbox "
    "table by `seq` and enter `request_exports` (`DELETE … RETURNING` feeding an `INSERT`; "
    "the request rows themselves are not rewritten). Results: read in the order of their "
    "partial index of unexported rows (`ix_results_unexported`, no sort), without row locks, "
    "over a connection of their own (reading never waits for the marking), and marked by "
    "`UPDATE … FROM unnest(ids, executed_at)`, which skips a result executed again since it "
    "was read; their hits are stored out of line (TOAST), so a mark rewrites a row of ~150 "
    "bytes, not the hits. The imports verify every file (signature, digests, strict JSON, "
    "per-record schema) and apply its records 5,000 to a statement (`INSERT … SELECT FROM "
    "unnest(…) ON CONFLICT DO NOTHING`), each file in one transaction with its batch row. "
    "A result writes four rows: its response, its request's final state, a history event "
    "and its owner's notification (time-ordered ids); when every request of a chunk still "
    "waits for its answer (nearly always), all of the chunk's writes run behind the reader. "
    "In both directions the bulk statements run while Python prepares the next chunk "
    "(`transfer/protocol/behind.py`, at most 8 queued). Before each import the receiving "
    "database is vacuumed, as autovacuum does while an operator carries the files. "
    "MB/s is batch-file bytes per second. "
    "CPU is the job process's own (user + system). Bulk SQL is the time PostgreSQL took "
    "over the bulk statements (partly hidden behind the Python work, so CPU + bulk SQL can "
    "exceed the wall time). Peak RSS is the process's high-water mark (`ru_maxrss`), after "
    "the slash the same process before the job started (its imports done). Floors from the "
    "same run on the same data: `sha256sum` and `cp` of the batch files (each with its "
    "process start; the files were in the page cache), and a raw `COPY` of the same rows: "
    "`COPY (SELECT …) TO STDOUT` into a file for an export, `COPY … FROM STDIN` into a "
    "scratch table `LIKE` the target (its columns and indexes, no foreign keys) for an import. "
    "What stays in memory, whatever the size: the export holds one page of rows (at most "
    "10,000) and the ids of the batch being written, the import one chunk of 5,000 records, "
    "the parameters of at most 8 queued statements and a 1 MiB read block; a single result "
    "is held whole (its profile type bounds it) and, "
    "if longer than a line may be, travels as parts, over as many batches as it takes, kept "
    "in the database on arrival until the last part is in (one holding a single hit longer "
    "than a line fails its request with the reason)."
)

HISTORY = (
    "- History: until the request outbox (request-network migration 0005) the export "
    "rewrote every request row (status EXPORTED and `batch_id`; the status was indexed, so "
    "no in-place update) and added one history event per request. For 1,000,000 requests "
    "those writes alone took 36.0 s and the export 43.9 s (2026-11-23, an Intel Xeon host). "
    "Measured statement by statement on 2026-11-29 (1,000,000 rows in pages of 10,000, "
    "rolled back; scratch scripts, not kept): the row update 24.6 s, the event insert "
    "25.3 s; reading the outbox 3.7 s (2.9 s without the row locks), deleting the exported "
    "rows from it by request id and inserting them into `request_exports` 18.8 s, by `seq` "
    "14.2 s; the same insert with foreign keys on `request_exports` took 33 s (a per-row "
    "check into the requests table), hence its rows carry none. A bulk insert of 1,000,000 "
    "rows shaped like `imported_requests` took 18.2 s with the foreign key on `batch_id` and "
    "11.6 s without (so the bulk-written `batch_id` columns carry none), 17.0 s with its "
    "unused `user_id` index and 15.0 s without it (dropped). Python's cycle collector, "
    "left running during an import, took 0.7 s of a 2.4 s import of 100,000 requests (1,008 "
    "collections, timed with `gc.callbacks`): each chunk of records lives long enough to be "
    "promoted and scanned again and again. Paused for each batch "
    "(`transfer.protocol.bulk.collector_paused`), "
    "the same import took 1.9–2.1 s instead of 3.1–3.7 s "
    "and 0.9–1.1 s of CPU instead of 1.8–2.0 s (2026-11-29, three runs each)."
)


RESULTS_HISTORY = (
    "- Results before issue 20's changes, measured the same day with the same bench (the "
    "code of that morning; `--sizes 1000000 --result-sizes 1000000 --rounds 1`, run twice, "
    "load 1.3–3.6; the better run's figures): export results of 1,000,000 took 21.8 s "
    "(14.4× its `COPY TO` of 1.52 s; 22.1 s in the other run; 51.1 s on 2026-11-29), import "
    "results 71.9 s (10.2× its `COPY FROM` of 7.03 s; 103.9 s in the other run; 114.2 s on "
    "2026-11-29), 27.9 s of CPU and 43.8 s in the bulk statements: the responses insert "
    "15.5 s, the history events 12.9 s, the requests' update 9.6 s, the lookup of the "
    "requests 5.2 s, the outbox delete 0.5 s, and the owners' notifications besides (an ORM "
    "executemany, not counted there). py-spy of that import (the first run): the main "
    "thread spent 59 % of the wall time in statements it had to wait for (the responses "
    "insert needed `RETURNING`, so it ran in front), 30 % in `_notify_owners` (the "
    "notification rows built and sent through SQLAlchemy's executemany, one random uuid4 "
    "primary key each), 30 % waiting for the one deferred statement then allowed in "
    "flight; the write-behind thread was inside a statement 32 % of the time. py-spy of "
    "that export: the main thread spent 62 % in `ServerCursor.fetchmany`, waiting for the "
    "connection while the deferred marking `UPDATE` held it and then for the next page "
    "(read under `FOR UPDATE`, sorted: no index gave the order); a mark ran 46 % of the time."
    "\n- What changed, each measured statement by statement on 1,000,000 rows (2026-12-05, "
    "scratch scripts, not kept): `responses` and `request_events` lost their foreign key "
    "to `requests` (request-network migration 0019; requests are never deleted and the "
    "import checks every result's request in the same transaction): their inserts took "
    "12.1 s and 7.6 s instead of 21.0 s and 15.3 s. The notifications go in with one "
    "`unnest` insert per chunk behind the reader, with time-ordered ids (UUIDv7, their "
    "randomness drawn at once, `transfer.format.uuid7s`): 2.5 s instead of "
    "8.0 s with random ids. When every request of a chunk is still PENDING (only such a "
    "request has no response) the responses insert needs no `RETURNING` and runs behind "
    "the reader too, and the write-behind queue holds up to 8 statements instead of one, "
    "so the reader waits only for the lookup of the next chunk's requests. Export: a "
    "partial index of the unexported results in export order (response-network migration "
    "0016) replaces the sort, the rows are read without row locks over a connection of "
    "their own, and the marking `UPDATE … FROM unnest(ids, executed_at)` skips a result "
    "executed again since it was read (what the row locks guarded against); the hits are "
    "stored out of line (TOAST, `toast_tuple_target = 128`, uncompressed), so a mark "
    "rewrites a row of ~150 bytes: reading and marking 1,000,000 results took 11.8 s "
    "instead of 37.0 s (35.7 s with the index, no row locks and the guard, hits in line)."
    "\n- Weighed, measured and not kept: `COPY` into a temporary staging table, then one "
    "`WITH s AS (DELETE FROM stage RETURNING *) INSERT … SELECT … ON CONFLICT DO NOTHING` "
    "per chunk, took 16.3 s for 1,000,000 responses (text `COPY`; 20.1 s with psycopg's "
    "binary `COPY`) where the `unnest` insert took 8.9 s: psycopg's `write_row` is Python "
    "work per row and the rows are written twice. Sorting each chunk by key: 8.3 s instead "
    "of 9.0 s, within this host's noise. Deferring secondary indexes (drop, load, rebuild) "
    "does not fit one transaction per batch of 10,000 into tables of millions: each "
    "rebuild reads the whole table and locks it against the API meanwhile. Without the "
    "vacuum before the import (the bench ran the steps minutes apart), the outbox delete "
    "took 8.2 s of a 1,000,000-result import: the export had just left 1,000,000 dead rows "
    "in `request_outbox`."
    "\n- What is left (the profiles below, 2026-12-05): the import writes four rows per "
    "result where its floor writes one. PostgreSQL is inside a statement 74 % of the wall "
    "time and the reader waits for it 59 %: the responses insert 10.3 s (the floor copies "
    "the same rows in 6.7 s), the requests' final state 9.8 s, the history events 7.0 s, "
    "the lookup of the requests 5.2 s, the notifications 3.7 s, one after the other on the "
    "batch's one connection (one transaction per batch). Fewer writes would change what the "
    "tables mean (a request's state read from its response rather than stored, events and "
    "notifications derived from the responses). The export's Python work alone (reading, "
    "encoding, hashing, signing and writing 709 MB: 9.1 s of CPU) is 6× its `COPY TO`; "
    "the marking (11.4 s) runs behind it, so the export takes about as long as the longer "
    "of the two. 3× would take PostgreSQL rendering the record lines (canonical JSON, "
    "sorted keys) and Python only hashing, signing and writing them."
)


def best_of(rounds: list[dict]) -> dict:
    """Per step the fastest round (its own figures), per floor the fastest too."""
    best: dict = {"n": rounds[0]["n"], "rounds": len(rounds)}
    for key in dict.fromkeys(k for r in rounds for k in r):
        values = [r[key] for r in rounds if key in r]
        if isinstance(values[0], dict) and "seconds" in values[0]:
            best[key] = {**min(values, key=lambda m: m["seconds"]), "runs": len(values)}
        elif isinstance(values[0], dict):
            best[key] = {k: min(v[k] for v in values) for k in values[0]}
        elif isinstance(values[0], float):
            best[key] = min(values)
    return best


def report(
    rows: list[dict],
    command: str,
    loads: tuple[float, float],
    *,
    pg_version: str,
    cpu: str,
    profiles: dict[str, Path] | None = None,
) -> str:
    lines = [
        MARK,
        "## Exchange: export and import of requests and results (PostgreSQL)",
        "",
        f"Machine: {cpu}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, PostgreSQL {pg_version} on the same host with "
        "its default settings (shared_buffers 128 MB, max_wal_size 1 GB, fsync on). "
        f"Date: {datetime.now(UTC):%Y-%m-%d}. Command: `{command}`; each figure is the best "
        "of the runs of its size (the runs column). Host load average "
        f"{loads[0]:.1f} before and {loads[1]:.1f} after the run: a shared machine, other "
        "work was running (the load column is the 1-minute average as each step began).",
        "",
        HOW,
        "",
        "| records | step | runs | files | MB | s | records/s | MB/s | CPU s | bulk SQL s "
        "| peak RSS MB | load | sha256sum s | cp s | COPY s | ÷ COPY |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        for step, kind, label, copy_key, copy_label in STEPS:
            if step not in row:
                continue
            m, files = row[step], row[f"{kind}_files"]
            mb = files["bytes"] / 1e6
            copy_s = row[copy_key]
            lines.append(
                f"| {row['n']:,} | {label} | {m.get('runs', 1)} | {m['files']} | {mb:.0f} | "
                f"{m['seconds']:.1f} | "
                f"{row['n'] / m['seconds']:,.0f} | {mb / m['seconds']:.1f} | {m['cpu']:.1f} | "
                f"{m.get('bulk_sql', 0):.1f} | {m['peak_mb']:.0f} / {m['baseline_mb']:.0f} | "
                f"{m['load']:.1f} | {files['sha256sum']:.2f} | {files['cp']:.2f} | "
                f"{copy_s:.2f} ({copy_label}) | {m['seconds'] / copy_s:.1f}× |"
            )
    lines += ["", *verdict(rows), HISTORY, RESULTS_HISTORY]
    largest = max((r["n"] for r in rows), default=0)
    for step, raw in (profiles or {}).items():
        table = profile_table(raw)
        if table:
            lines += [
                "",
                f"py-spy of {step.replace('_', ' ')} ({largest:,}, this run; `--profile`, "
                "200 samples a second, wall clock, idle included):",
                "",
                *table,
            ]
    lines += [MARK]
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict]) -> list[str]:
    out = []
    for row in (r for r in rows if r["n"] >= 1_000_000):
        for step in ("export_requests", "import_requests"):
            m = row[step]
            met = "met" if m["seconds"] < TARGET_S else "NOT met"
            out.append(
                f"- Target {met}: {step.replace('_', ' ')} of {row['n']:,} took "
                f"{m['seconds']:.1f} s (target < {TARGET_S:.0f} s), of which PostgreSQL spent "
                f"{m.get('bulk_sql', 0):.1f} s on the bulk statements and the process "
                f"{m['cpu']:.1f} s of CPU."
            )
    for row in (r for r in rows if r["n"] >= 1_000_000):
        m = row["export_requests"]
        if m["seconds"] >= TARGET_S and "marking_floor" in row:
            out.append(
                f"- Why the export misses: its database work alone takes "
                f"{row['marking_floor']:.1f} s (below) and the Python side (read, encode, sign, "
                f"hash and write the files) {m['cpu']:.1f} s of CPU."
            )
    for row in (r for r in rows if r["n"] >= 1_000_000):
        m = row["import_requests"]
        if m["seconds"] >= TARGET_S:
            out.append(
                f"- Why the import misses: PostgreSQL's bulk statements took "
                f"{m.get('bulk_sql', 0):.1f} s (a raw `COPY` into a table with the same indexes "
                f"{row['requests_copy_in']:.1f} s) and the process {m['cpu']:.1f} s of CPU "
                "(verifying and decoding the files, building the statements). The two overlap "
                "only inside one file's transaction (two chunks of 5,000 in a default batch), "
                "so each file's first chunk and last statement run alone. Chunks of 500 to "
                "2,500 records showed no clear gain in a run of 300,000 (within the ±10 % "
                "noise of this host); overlapping one file's commit with the next file's "
                "reading, or fewer indexes on `imported_requests`, are what is left."
            )
    for row in (r for r in rows if r["n"] >= 1_000_000):
        for step, copy_key, label in (
            ("export_results", "results_copy_out", "COPY TO"),
            ("import_results", "results_copy_in", "COPY FROM"),
        ):
            if step not in row:
                continue
            m, floor = row[step], row[copy_key]
            ratio = m["seconds"] / floor
            met = "met" if ratio <= TARGET_COPY else "NOT met"
            out.append(
                f"- Target {met}: {step.replace('_', ' ')} of {row['n']:,} took "
                f"{m['seconds']:.1f} s, {ratio:.1f}× its `{label}` of {floor:.2f} s (target "
                f"≤ {TARGET_COPY:.0f}×, {TARGET_COPY * floor:.1f} s); PostgreSQL spent "
                f"{m.get('bulk_sql', 0):.1f} s on the bulk statements "
                f"({_statements(m)}) and the process {m['cpu']:.1f} s of CPU."
            )
    for row in rows:
        if "marking_floor" in row:
            out.append(
                f"- {row['n']:,} requests: the export's database work alone (read and lock "
                "the whole outbox, then per 10,000 the same marking statement, no Python "
                f"work, rolled back) took {row['marking_floor']:.1f} s; the export took "
                f"{row['export_requests']['seconds']:.1f} s."
            )
    for step, _, label, _, _ in STEPS:
        peaks = [(r["n"], r[step]["peak_mb"], r[step]["baseline_mb"]) for r in rows if step in r]
        if len(peaks) > 1:
            growth = [peak - base for _, peak, base in peaks]
            out.append(
                f"- Peak RSS of {label}: {min(p for _, p, _ in peaks):.0f}–"
                f"{max(p for _, p, _ in peaks):.0f} MB ({min(growth):.0f}–{max(growth):.0f} MB "
                f"above the idle process) from {peaks[0][0]:,} to {peaks[-1][0]:,} records."
            )
    return out


def _statements(m: dict) -> str:
    by = sorted(m.get("bulk_sql_by", {}).items(), key=lambda kv: -kv[1])
    return "; ".join(f"`{text} …` {seconds:.1f} s" for text, seconds in by) or "none timed"


def profile_table(raw: Path, top: int = 10) -> list[str]:
    """The job's frames from py-spy's collapsed stacks (`--profile`, wall clock, idle
    included): per function of the main thread, the share of the job's wall time it was on
    the stack (the trunk every sample shares left out); for the write-behind thread, the
    share it spent inside a bulk statement."""
    main: Counter[str] = Counter()
    writer: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = {f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")" if " (" in f
                  else f for f in stack.split(";")}  # fmt: skip
        n = int(count)
        if any(f.startswith("child.<locals>.<lambda>") for f in frames):
            main["total"] += n
            main.update(dict.fromkeys(frames, n))
        elif "_run (transfer/protocol/pgarrays.py)" in frames:
            writer["statement"] += n
    total = main.pop("total", 0)
    if not total:
        return []
    lines = ["| thread | function (file) | share of the job's wall time |", "| --- | --- | ---: |"]
    shown = [(f, n) for f, n in main.most_common() if n < 0.98 * total][:top]
    lines += [f"| main | `{f}` | {100 * n / total:.0f} % |" for f, n in shown]
    if writer["statement"]:
        lines.append(
            f"| write-behind | inside a bulk statement (`pgarrays._run`) | "
            f"{100 * writer['statement'] / total:.0f} % |"
        )
    return lines


def write_section(section: str) -> None:
    """Replace this bench's section of docs/PERFORMANCE.md (or append it), keep the others."""
    perf_doc.write_section(MARK, section)
