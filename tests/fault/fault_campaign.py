"""The kill campaign: rounds of the cycle with steps SIGKILLed at random moments, then recovery.

A round submits a wave of requests and runs the cycle (`fault_world.CYCLE`) once. Some steps
of the round are killed: the step starts as its own process and gets SIGKILL after a random
delay drawn against that step's normal duration (measured in the same run), so kills land
before its first transaction (interpreter, settings, keys), inside one, between or after
them, and sometimes only after the step has finished. Sometimes the re-run is killed too.
Then either the step runs again at once, or its work waits for the next round (the next
beat tick); the round goes on either way, and the operator carries whatever is in the
outbox.

After the rounds the system settles: whole cycles without kills, with the product's own
recovery tools (`response.requeue_stale` before every execution, and when a cycle makes no
progress `request.requeue_unacked` and `ferry request|response resend`), until every request
is final and nothing is left to carry, or no cycle makes progress any more.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from fault_process import StepRun
from fault_world import CYCLE, World
from sqlalchemy import func, select

from transfer.format.names import parse_batch_filename

DEFAULT_DURATION_S = 0.15  # a forked step's duration before one has been measured
LATE_FACTOR = 1.15  # kill delays reach this far past the step's normal duration
MOMENTS = ("before", "inside", "between", "exec", "finished")


@dataclass
class Kill:
    """One SIGKILL attempt and where it landed (see `StepRun.moment`)."""

    round: int
    step: str
    how: str
    kill_after: float
    typical: float
    moment: str

    @property
    def landed(self) -> bool:
        return self.moment != "finished"


@dataclass
class Campaign:
    world: World
    seed: int
    exec_share: float = 0.15  # share of kill attempts aimed at the real `ferry` console script
    defer_share: float = 0.4  # share of killed steps whose re-run waits for the next round
    rng: random.Random = field(init=False)
    submitted: list[str] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    recovery: Counter = field(default_factory=Counter)  # recovery tools used, and what they did
    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    exec_overhead: float = 0.0
    round: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._deck: list[str] = []
        self._anomalies: dict[str, str] = {}  # what went wrong on the way, once per cause
        self._seen: Counter[str] = Counter()

    # --- anomalies -------------------------------------------------------------------------

    def note(self, key: str, message: str) -> None:
        """Something that must not happen; the first sighting is kept, repeats counted."""
        self._seen[key] += 1
        self._anomalies.setdefault(key, f"seed {self.seed} round {self.round}: {message}")

    @property
    def anomalies(self) -> list[str]:
        return [
            msg + (f" [seen {self._seen[key]} times]" if self._seen[key] > 1 else "")
            for key, msg in self._anomalies.items()
        ]

    @property
    def orphans(self) -> list[str]:
        return [k.removeprefix("orphan:") for k in self._anomalies if k.startswith("orphan:")]

    # --- measuring -------------------------------------------------------------------------

    def typical(self, step: str) -> float:
        seen = self.durations.get(step)
        return statistics.median(seen[-7:]) if seen else DEFAULT_DURATION_S

    def measure_exec_overhead(self) -> None:
        """How much longer the real console script takes than a forked step (its imports)."""
        forked = self.world.step("request.status").duration
        execed = self.world.step("request.status", exec_cli=True).duration
        self.exec_overhead = max(execed - forked, 0.2)

    # --- running steps ---------------------------------------------------------------------

    def normal(self, step: str) -> dict | None:
        """Run a step to its end; note anything unusual. Returns its JSON output if any."""
        run = self.world.run(step)
        self.durations[step].append(run.duration)
        if run.returncode == 3 and step.endswith(".import"):
            out = run.json()
            for f in out["files"]:
                if f["status"] == "quarantined":
                    self.note(
                        f"quarantine:{f['file']}",
                        f"{step} quarantined {f['file']} ({f['rule']}): {'; '.join(f['reasons'])}",
                    )
            return out
        if run.returncode != 0:
            self.note(
                f"exit:{step}:{run.returncode}",
                f"{step} exited {run.returncode} on a normal run: {run.stderr.strip()[-600:]}",
            )
            return None
        try:
            out = run.json()
        except ValueError:
            return None
        self._count_recovery(step, out)
        return out

    def _count_recovery(self, step: str, out: dict) -> None:
        """Re-runs that found a killed run's work half done: duplicates, copies in place."""
        if step.endswith(".import"):
            dup = sum(f["status"] == "duplicate" for f in out.get("files", []))
            if dup:
                self.recovery[f"{step}: duplicate"] += dup
        elif step.startswith("carry."):
            there = sum(s.get("reason") == "already there" for s in out.get("skipped", []))
            if there:
                self.recovery[f"{step}: already there"] += there

    def kill(self, step: str, *, exec_cli: bool = False) -> Kill:
        """Start `step` and SIGKILL it after a random delay; note what it left behind."""
        typical = self.typical(step)
        delay = self.rng.uniform(0.0, LATE_FACTOR * typical)
        if exec_cli:
            delay += self.exec_overhead * self.rng.uniform(0.85, 1.05)
        before = self.outbox_orphans()
        run = self.world.run(step, kill_after=delay, exec_cli=exec_cli)
        if not run.died and run.returncode not in (0, 3):
            self.note(
                f"exit:{step}:{run.returncode}",
                f"{step} exited {run.returncode} before its kill: {run.stderr.strip()[-600:]}",
            )
        elif not run.died and not exec_cli:
            self.durations[step].append(run.duration)
        self.note_orphans(step, run, before)
        record = Kill(self.round, step, run.how, delay, typical, run.moment)
        self.kills.append(record)
        return record

    def note_orphans(self, step: str, run: StepRun, before: set[str]) -> None:
        """Each batch file the killed `run` left under its final name but never recorded."""
        when = (
            f"at fault point {run.kill_point}"
            if run.kill_point
            else f"{run.kill_after:.3f}s after start ({run.how}, {run.moment})"
        )
        for orphan in sorted(self.outbox_orphans() - before):
            self.note(
                f"orphan:{orphan}",
                f"{step} SIGKILLed {when} left {orphan} under its final batch name, though "
                "its transaction never committed (no batch row): the operator carries it, "
                "the peer imports it, and the re-export reuses its sequence number",
            )

    def outbox_orphans(self) -> set[str]:
        """Final-named batch files in either outbox that their network never recorded."""
        found = set()
        for net, network in self.world.networks.items():
            names = {
                p.name
                for d in (network.outbox, network.outbox / "carried")
                if d.is_dir()
                for p in d.iterdir()
                if p.name.endswith(".jsonl") and not p.name.startswith(".")
            }
            if not names:
                continue
            for name in names - _sent_filenames(self.world, net):
                try:
                    parse_batch_filename(name)
                except ValueError:
                    continue
                found.add(f"{net}/{name}")
        return found

    def run_step(self, step: str, kills: int = 0) -> None:
        """`kills` SIGKILLed attempts; then the step again until it has done its work, or
        (sometimes, after a kill) not until the next round."""
        for _ in range(kills):
            self.kill(step, exec_cli=self.rng.random() < self.exec_share)
        if kills and self.rng.random() < self.defer_share:
            return
        if step == "response.execute":
            self._recover("response.requeue_stale")  # beat's job, brought forward
            while True:  # one run claims at most execute_batch requests
                out = self.normal(step)
                if not out or out["done"] + out["failed"] == 0:
                    break
        else:
            self.normal(step)

    def _recover(self, job: str) -> None:
        out = self.normal(job) or {}
        if out.get("requeued"):
            self.recovery[f"{job}: requeued"] += out["requeued"]

    # --- rounds ----------------------------------------------------------------------------

    def _draw(self) -> str:
        """The next step to kill: every step equally often, in random order."""
        if not self._deck:
            self._deck = list(CYCLE)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def submit(self, count: int) -> None:
        self.submitted += self.world.submit(count, seed=self.rng.randrange(2**32))

    def run_round(self, *, targets: int, wave: tuple[int, int]) -> None:
        self.round += 1
        self.submit(self.rng.randint(*wave))
        plan: Counter[str] = Counter()
        for _ in range(targets):
            plan[self._draw()] += 2 if self.rng.random() < 0.2 else 1
        for step in CYCLE:
            self.run_step(step, plan[step])
            if step == "response.import" and self.rng.random() < 0.3:
                self.submit(self.rng.randint(5, 40))  # arrives mid-cycle, goes out next round

    def landed(self) -> int:
        return sum(k.landed for k in self.kills)

    # --- settling --------------------------------------------------------------------------

    def final_count(self) -> int:
        from request_network.models import Request

        with self.world.session("request") as s:
            return s.execute(
                select(func.count())
                .select_from(Request)
                .where(Request.status.in_(("COMPLETED", "FAILED")))
            ).scalar_one()

    def _quiet(self) -> bool:
        """Nothing waiting in any outbox or inbox."""
        for network in self.world.networks.values():
            for d in (network.outbox, network.inbox):
                if d.is_dir() and any(
                    p.name.endswith(".jsonl") and not p.name.startswith(".") for p in d.iterdir()
                ):
                    return False
        return True

    def settle(self, *, max_cycles: int = 10, patience: int = 3) -> int:
        """Cycles without kills until all is final and quiet; returns the cycles used."""
        self.round += 1
        stalled = 0
        for n in range(1, max_cycles + 1):
            before = self.final_count()
            for step in CYCLE:
                self.run_step(step)
            after = self.final_count()
            if after == len(self.submitted) and self._quiet():
                for step in CYCLE:  # one more trip, so the last acks reach both sides
                    self.run_step(step)
                return n
            if after > before:
                stalled = 0
                continue
            stalled += 1
            if stalled > patience:
                return n
            # No progress: what an operator and beat have for requests stuck in transit.
            self._recover("request.requeue_unacked")
            for net in ("request", "response"):
                out = self.normal(f"{net}.resend") or {}
                restored = [b for b in out.get("batches", []) if b.get("status") == "restored"]
                if restored:
                    self.recovery[f"{net}.resend: restored"] += len(restored)
        return max_cycles

    # --- reporting -------------------------------------------------------------------------

    def summary(self) -> str:
        """Kills per step and where they landed (a table), and the recovery tools used."""
        by_step: dict[str, Counter] = defaultdict(Counter)
        for k in self.kills:
            by_step[k.step][k.moment] += 1
        execs = [k for k in self.kills if k.how == "exec"]
        lines = [
            f"seed {self.seed}: {len(self.kills)} SIGKILL attempts, {self.landed()} landed on "
            f"a running step ({len(execs)} attempts on the real `ferry` console script, "
            f"{sum(k.landed for k in execs)} landed), {len(self.submitted)} requests "
            f"submitted, {self.round} rounds",
            "where the kills landed: before its first transaction | inside one | between/after "
            "them | exec'd `ferry` (no trace) | the step had already finished",
            f"{'step':<18}" + "".join(f"{m:>10}" for m in MOMENTS),
        ]
        for step in CYCLE:
            c = by_step.get(step, Counter())
            lines.append(f"{step:<18}" + "".join(f"{c[m]:>10}" for m in MOMENTS))
        total = Counter(k.moment for k in self.kills)
        lines.append(f"{'all':<18}" + "".join(f"{total[m]:>10}" for m in MOMENTS))
        if self.recovery:
            lines.append(
                "recovery used: " + ", ".join(f"{k}={v}" for k, v in self.recovery.items())
            )
        return "\n".join(lines)


def _sent_filenames(world: World, net: str) -> set[str]:
    if net == "request":
        from request_network.models import Batch
    else:
        from response_network.models import Batch
    with world.session(net) as s:
        return set(s.execute(select(Batch.filename).where(Batch.direction == "out")).scalars())
