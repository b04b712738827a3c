"""Batch format throughput: write and verify N request records, next to `sha256sum` of the
same file (the floor). Writes its figures to docs/PERFORMANCE.md.

    uv run python bench/bench_batches.py [--records 10000 100000]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from shared.records import validate_record
from transfer.format import Limits, Record, open_batch, write_batch
from transfer.keys import generate_keypair, load_public_keys, load_signing_key

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "PERFORMANCE.md"
MARK = "<!-- bench_batches -->"


def records(n: int):
    for i in range(n):
        yield Record(
            "request",
            str(uuid.UUID(int=i + 1)),
            1,
            {
                "user_id": f"user-{i % 100}",
                "profile_type": "articles",
                "query": {
                    "query": {"match": {"field": "title", "value": f"ferry {i}"}},
                    "size": 10,
                },
                "submitted_at": "2026-11-23T12:00:00Z",
            },
        )


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(n: int, work: Path) -> dict:
    key = load_signing_key(work / "keys" / "request.ed25519.pem")
    pub = load_public_keys([work / "keys"])
    limits = Limits(max_records=max(n, 1), max_batch_bytes=2**31)
    out = work / f"out-{n}"
    out.mkdir()
    written = []

    def write():
        for f in out.iterdir():
            f.unlink()
        written[:] = [
            write_batch(
                out,
                stream="requests",
                source="request",
                destination="response",
                seq=1,
                prev_digest=None,
                signing_key=key,
                records=records(n),
                limits=limits,
            )
        ]

    t_write = best_of(3, write)
    path = written[0].path

    def verify():
        reader = open_batch(
            path,
            expected_destination="response",
            public_keys=pub,
            limits=limits,
            validate_record=validate_record,
        )
        count = sum(1 for _ in reader.records())
        assert count == n

    t_verify = best_of(3, verify)
    t_sha = best_of(
        3, lambda: subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    )
    size = path.stat().st_size
    return {"n": n, "bytes": size, "write": t_write, "verify": t_verify, "sha256sum": t_sha}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate_keypair(work / "keys", "request")
        rows = [run(n, work) for n in args.records]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    lines = [
        MARK,
        "## Batch files: write and verify",
        "",
        f"Machine: {cpu}, {platform.machine()}, Python {platform.python_version()}. "
        f"Date: {datetime.now(UTC):%Y-%m-%d}. Command: "
        f"`uv run python bench/bench_batches.py --records {' '.join(map(str, args.records))}`."
        " Best of 3 runs.",
        "",
        "Verify = streaming read with signature, digest, strict JSON and per-record schema "
        "checks; the floor is `sha256sum` of the same file.",
        "",
        "| records | file MB | write s | write rec/s | verify s | verify rec/s | verify MB/s "
        "| sha256sum MB/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        mb = r["bytes"] / 1e6
        lines.append(
            f"| {r['n']:,} | {mb:.1f} | {r['write']:.2f} | {r['n'] / r['write']:,.0f} | "
            f"{r['verify']:.2f} | {r['n'] / r['verify']:,.0f} | {mb / r['verify']:.1f} | "
            f"{mb / r['sha256sum']:.0f} |"
        )
    lines.append(MARK)
    section = "\n".join(lines) + "\n"
    text = (
        OUT.read_text()
        if OUT.exists()
        else "# Performance\n\nMeasured figures; each section says how it was measured.\n\n"
    )
    if MARK in text:
        head, _, rest = text.partition(MARK)
        _, _, tail = rest.partition(MARK)
        text = head + section.rstrip("\n") + tail
    else:
        text += "\n" + section
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
