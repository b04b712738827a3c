"""The `notify` task's fan-out on PostgreSQL, next to its floor in the same run.

    uv run python bench/bench_notify.py [--events 5000] [--users 1000] [--rounds 3]
        [--before DIR] [--no-write]

A throwaway database (`ferry_bench_notify`, dropped at the end) is created and migrated
(request network), with `--users` users of whom half have an email address. Each round
writes `--events` user events (`request.failed`, as an import completing that many requests
writes them, in one statement) and times one `shared.notifications.dispatch` of them in one
transaction, as `request_network.jobs.notify` runs it (its default `limit` is 5,000 events
a run). The floor, on the same events: the same in-app and email rows written by two
`INSERT … SELECT` statements inside PostgreSQL (no Python, no round trip per row), then
rolled back. Each fan-out runs in a fresh process. `--before DIR` measures another checkout
of Ferry too (e.g. `git worktree add /tmp/ferry-before <commit>`), round by round on the
same data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get(
    "FERRY_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DB = "ferry_bench_notify"
MARK = "<!-- bench_notify -->"


def db_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(ADMIN_URL).set(database=DB).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(statement)


def fresh_database(users: int) -> None:
    import psycopg

    from shared.migrate import upgrade

    admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DB}"')
    upgrade("request", db_url())
    with psycopg.connect(libpq(db_url())) as conn:
        conn.execute(
            "INSERT INTO profile_types (name, index, fields, return_fields, max_size,"
            " rate_limits, version, updated_at) VALUES ('articles', 'articles',"
            ' \'{"title": "text"}\', \'["title"]\', 50,'
            ' \'{"minute": 10, "hour": 100, "day": 1000}\', 1, now())'
        )
        conn.execute(
            "INSERT INTO users (id, username, password_hash, role, profile_type, active,"
            " version, updated_at, synced_at, email) SELECT 'u-' || i, 'user' || i, 'x',"
            " 'user', 'articles', true, 1, now(), now(),"
            " CASE WHEN i %% 2 = 0 THEN 'user' || i || '@example.org' END"
            " FROM generate_series(0, %(n)s - 1) i",
            {"n": users},
        )


def emit(events: int, users: int) -> None:
    from request_network.services import notifications
    from shared.db import transaction

    items = [
        {"user_id": f"u-{i % users}", "title": f"Request {i} failed", "data": {"n": i}}
        for i in range(events)
    ]
    with transaction(db_url()) as session:
        notifications.emit_for_users(session, "request.failed", items)


def clear_fan_out() -> None:
    import psycopg

    with psycopg.connect(libpq(db_url())) as conn:
        conn.execute("TRUNCATE notifications, notification_deliveries, notification_events")
    with psycopg.connect(libpq(db_url()), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def floor() -> tuple[float, int, int]:
    """The in-app and email rows of the waiting events, written inside PostgreSQL."""
    import psycopg

    with psycopg.connect(libpq(db_url())) as conn:
        began = time.perf_counter()
        in_app = conn.execute(
            "INSERT INTO notifications (event_id, user_id, at, kind, severity, resolved, title,"
            " body, data) SELECT e.id, e.user_id, e.at, e.kind, e.severity, e.resolved,"
            " e.title, e.body, e.data FROM notification_events e JOIN users u"
            " ON u.id = e.user_id AND u.active WHERE e.dispatched_at IS NULL"
        ).rowcount
        emails = conn.execute(
            "INSERT INTO notification_deliveries (event_id, channel, target, user_id, status,"
            " attempts, next_attempt_at, created_at) SELECT e.id, 'email', u.email, u.id,"
            " 'pending', 0, now(), now() FROM notification_events e JOIN users u"
            " ON u.id = e.user_id AND u.active AND u.email IS NOT NULL"
            " WHERE e.dispatched_at IS NULL"
        ).rowcount
        conn.execute("UPDATE notification_events SET dispatched_at = now()")
        took = time.perf_counter() - began
        conn.rollback()
    return took, in_app, emails


def dispatch() -> None:
    """The child: one dispatch of the waiting events by the code on `sys.path`; prints its
    wall time and counts."""
    from request_network.services import notifications
    from shared.db import transaction

    began = time.perf_counter()
    with transaction(db_url()) as session:
        done = notifications.dispatch(session=session)
    print(json.dumps({"took": time.perf_counter() - began, "done": done}))


def run_child(code: Path, spy: Path | None = None) -> tuple[float, dict]:
    env = dict(os.environ, PYTHONPATH=str(code))
    command = [sys.executable, __file__, "--child", "--code", str(code)]
    if spy is not None:
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [str(py_spy), "record", "--idle", "--rate", "250", "--format", "raw"]
        command += ["--output", str(spy), "--", sys.executable, __file__, "--child"]
        command += ["--code", str(code)]
    out = subprocess.run(
        command,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    return result["took"], result["done"]


def profile_top(raw: Path, top: int = 8) -> list[str]:
    """Where the dispatch's samples go: the innermost frame (own) and Ferry's functions and
    the calls out anywhere on the stack (inclusive), in % of the dispatch's samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [
            f.split(" (")[0] + " (" + f.split("(")[-1].split(":")[0].split("/")[-1] + ")"
            for f in stack.split(";")
            if f
        ]
        start = [i for i, f in enumerate(frames) if f.startswith("dispatch (notifications.py")]
        if not start:
            continue
        frames = frames[start[0] :]
        total += int(count)
        own[frames[-1]] += int(count)
        for f in set(frames):
            inclusive[f] += int(count)
    rows = [f"{total} samples of `dispatch` (py-spy --idle, 250 Hz)", ""]
    rows += ["| own | % | inclusive | % |", "| --- | ---: | --- | ---: |"]
    for (fo, no), (fi, ni) in zip(
        own.most_common(top), inclusive.most_common(top + 1)[1:], strict=False
    ):
        rows.append(f"| `{fo}` | {100 * no / total:.0f} | `{fi}` | {100 * ni / total:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--before", type=Path, help="another checkout (an earlier commit) measured alongside"
    )
    parser.add_argument("--no-write", action="store_true", help="print, leave the docs alone")
    parser.add_argument("--profile", type=Path, help="the last round under py-spy, here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path[:0] = [str(args.code), str(ROOT / "bench")]
    if args.child:
        dispatch()
        return
    from perf_doc import cpu_model, write_section

    codes = {"this commit": ROOT} | (
        {f"before (`{args.before}`)": args.before} if args.before else {}
    )
    fresh_database(args.users)
    floors: list[tuple[float, int, int]] = []
    runs: dict[str, list[float]] = {name: [] for name in codes}
    try:
        for round_ in range(args.rounds):
            for n, (name, code) in enumerate(codes.items()):
                clear_fan_out()
                emit(args.events, args.users)
                floors.append(floor())
                spy = None
                if args.profile and round_ == args.rounds - 1:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    spy = args.profile / f"notify-{n}.txt"
                took, done = run_child(code, spy)
                _, in_app, emails = floors[-1]
                want = {"events": args.events, "notifications": in_app, "deliveries": emails}
                assert done == want, (name, done, want)
                runs[name].append(took)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    floor_best = min(f[0] for f in floors)
    _, in_app, emails = floors[0]
    command = f"uv run python bench/bench_notify.py --events {args.events} --users {args.users}"
    command += f" --rounds {args.rounds}" + (f" --before {args.before}" if args.before else "")
    rows = [
        f"| {name} | {min(took):.3f} | {statistics.median(took):.3f} |"
        f" {args.events / min(took):,.0f} | {floor_best:.3f} | {min(took) / floor_best:.1f}× |"
        for name, took in runs.items()
    ]
    print("\n".join(rows))
    profiles = []
    if args.profile:
        for n, name in enumerate(codes):
            profiles += ["", f"Profile, {name} (its last round):", ""]
            profiles += profile_top(args.profile / f"notify-{n}.txt")
        print("\n".join(profiles))
    if args.no_write:
        return
    machine = f"{cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    section = f"""{MARK}
## Notification fan-out: one `notify` run against the same rows written inside PostgreSQL

Machine: {machine}. Date: {date.today()}; load average {os.getloadavg()[0]:.1f} at the end.
Command: `{command}`.

One `shared.notifications.dispatch` of {args.events:,} user events of {args.users:,} users (half
with an email address: {in_app:,} in-app rows and {emails:,} email deliveries) in one
transaction, as the `notify` task runs it (at most 5,000 events a run), in a fresh process;
best and median of {args.rounds} rounds. Floor: the same rows written by two
`INSERT … SELECT` statements inside PostgreSQL and the events marked, rolled back (best of
all rounds).

| code | best s | median s | events/s | floor s | ÷ floor |
| --- | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}
{chr(10).join(profiles)}
{MARK}
"""
    write_section(MARK, section)


if __name__ == "__main__":
    main()
