"""Sweep the kill campaign over many seeds; print every failing seed with its first error.

Not part of `make test` (its name does not start with `test_`). Each seed runs
`test_sigkill_campaign` in its own pytest process (its own fork server, search engine and
scratch directory), `--jobs` of them at once:

    uv run python tests/fault/sweep.py --seeds 200 --jobs 2
    uv run python tests/fault/sweep.py --seed 1085058665 --seed 42   # just these

The seeds are drawn from `--master` (default 0), so the same command sweeps the same seeds.
A seed's kills land after delays measured against the step durations of its own run, so a
seed replays the same choices, not always the same instants: a failing seed is worth a few
replays (`--repeat`). Each result is also appended, one JSON object a line, to `--log`.
The exit code is 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]
NODE = "tests/fault/test_sigkill.py::test_sigkill_campaign"
#: The campaign's first anomaly in pytest's assertion report: "E   - seed N round R: …".
FIRST_ERROR = re.compile(r"^E\s+- (seed \d+ round \d+: .*)$", re.MULTILINE)


def first_error(output: str) -> str:
    """The first anomaly the campaign reported, else the first failure line pytest printed."""
    found = FIRST_ERROR.search(output)
    if found:
        return found.group(1)
    for line in output.splitlines():
        if line.startswith("E ") or line.startswith("FAILED") or "Error" in line:
            return line.strip()
    return output.strip().splitlines()[-1] if output.strip() else "no output"


def run_seed(seed: int, kills: int, scratch: Path, timeout: float) -> dict:
    """One campaign in its own pytest process; its scratch files kept only if it failed."""
    base = scratch / f"seed-{seed}"
    env = os.environ | {"FERRY_FAULT_SEED": str(seed), "FERRY_FAULT_KILLS": str(kills)}
    argv = [sys.executable, "-m", "pytest", NODE, "-q", "-p", "no:cacheprovider",
            f"--basetemp={base}", "-o", "addopts="]  # fmt: skip
    started = time.monotonic()
    try:
        run = subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        output, ok = run.stdout + run.stderr, run.returncode == 0
    except subprocess.TimeoutExpired as exc:
        output, ok = f"timed out after {timeout:.0f} s\n{exc.stdout or ''}", False
    result = {
        "seed": seed,
        "kills": kills,
        "ok": ok,
        "seconds": round(time.monotonic() - started, 1),
        "error": None if ok else first_error(output),
    }
    if ok:
        shutil.rmtree(base, ignore_errors=True)
    else:
        (scratch / f"seed-{seed}.log").write_text(output)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds to draw")
    parser.add_argument("--master", type=int, default=0, help="draws the seeds")
    parser.add_argument("--seed", type=int, action="append", help="run this seed (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each seed")
    parser.add_argument("--kills", type=int, default=60, help="FERRY_FAULT_KILLS of each run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a run may take")
    parser.add_argument("--scratch", type=Path, help="where failing runs keep their files")
    parser.add_argument("--log", type=Path, default=ROOT / "var" / "fault-sweep.jsonl")
    parser.add_argument(
        "--resume", action="store_true", help="skip the seeds --log already has a result for"
    )
    args = parser.parse_args()

    seeds = args.seed or random.Random(args.master).sample(range(2**31), args.seeds)
    if args.resume and args.log.exists():
        done = {orjson.loads(line)["seed"] for line in args.log.read_bytes().splitlines()}
        seeds = [s for s in seeds if s not in done]
    seeds = [s for s in seeds for _ in range(args.repeat)]
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="ferry-fault-sweep-"))
    scratch.mkdir(parents=True, exist_ok=True)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"sweeping {len(seeds)} runs ({args.kills} kills each), {args.jobs} at a time; "
        f"failing runs keep their files in {scratch}",
        flush=True,
    )
    started = time.monotonic()
    failed = []
    with ThreadPoolExecutor(args.jobs) as pool, args.log.open("ab") as log:
        futures = [pool.submit(run_seed, s, args.kills, scratch, args.timeout) for s in seeds]
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            log.write(orjson.dumps(result) + b"\n")
            log.flush()
            if not result["ok"]:
                failed.append(result)
                print(f"FAIL seed {result['seed']}: {result['error']}", flush=True)
            elif done % 10 == 0:
                print(f"… {done}/{len(seeds)} runs, {len(failed)} failed", flush=True)
    minutes = (time.monotonic() - started) / 60
    print(f"{len(seeds)} runs, {len(failed)} failed, {minutes:.1f} min ({args.jobs} at a time)")
    for result in failed:
        print(f"  FERRY_FAULT_SEED={result['seed']}: {result['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
