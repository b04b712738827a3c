"""What must hold once the system has settled, however many steps were killed on the way.

Each check returns a list of violations (plain sentences naming the request, batch or file);
an empty list means it holds. The test gathers them all before failing, so one run shows
every consequence of a fault, not just the first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import orjson
from fault_world import NETWORKS, PEER, World
from sqlalchemy import select

from transfer.format.names import parse_batch_filename

FINAL_REQUEST = {"COMPLETED", "FAILED"}
FINAL_RESPONSE = {"DONE", "FAILED"}
WORKER_LOST = "worker lost"  # what response.requeue_stale writes on an abandoned execution
EXPECTED_FINAL = {"articles": ("COMPLETED", "DONE"), "ghost": ("FAILED", "FAILED")}


def _sample(items: Iterable, n: int = 5) -> str:
    items = sorted(items)
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def request_side(world: World, submitted: list[str]) -> list[str]:
    """Every submission: one request, one final state, one final event, one response."""
    from request_network.models import Request, RequestEvent, Response

    problems: list[str] = []
    want = set(submitted)
    if len(want) != len(submitted):
        problems.append("the harness submitted a request id twice")
    with world.session("request") as s:
        requests = {r.id: r for r in s.execute(select(Request)).scalars()}
        responses = Counter(s.execute(select(Response.request_id)).scalars())
        response_status = dict(s.execute(select(Response.request_id, Response.status)).all())
        events: dict[str, list[str]] = defaultdict(list)
        for rid, status in s.execute(
            select(RequestEvent.request_id, RequestEvent.status).order_by(RequestEvent.id)
        ):
            events[rid].append(status)
    lost = want - requests.keys()
    extra = requests.keys() - want
    if lost:
        problems.append(f"request network lost {len(lost)} submitted requests: {_sample(lost)}")
    if extra:
        problems.append(f"request network holds {len(extra)} requests never submitted")
    by_status = defaultdict(set)
    for rid in want & requests.keys():
        by_status[requests[rid].status].add(rid)
    for status, ids in sorted(by_status.items()):
        if status not in FINAL_REQUEST:
            problems.append(
                f"{len(ids)} requests never reached a final state (still {status}): {_sample(ids)}"
            )
    final = sum(len(ids) for status, ids in by_status.items() if status in FINAL_REQUEST)
    if final != len(want):
        problems.append(f"{final} final states for {len(want)} submissions")
    no_response = {rid for rid in want if responses[rid] == 0}
    if no_response:
        problems.append(f"{len(no_response)} requests have no Response row: {_sample(no_response)}")
    doubled = {rid for rid, n in responses.items() if n > 1}
    if doubled:
        problems.append(f"{len(doubled)} requests have several Response rows")
    wrong_pair = {
        rid
        for rid in want & requests.keys()
        if rid in response_status
        and {"DONE": "COMPLETED", "FAILED": "FAILED"}.get(response_status[rid])
        != requests[rid].status
    }
    if wrong_pair:
        problems.append(f"{len(wrong_pair)} requests disagree with their Response's status")
    many_finals = {rid for rid in want if sum(e in FINAL_REQUEST for e in events[rid]) > 1}
    if many_finals:
        problems.append(
            f"{len(many_finals)} requests reached a final state more than once: "
            f"{_sample(many_finals)}"
        )
    bad_history = {
        rid
        for rid in want & requests.keys()
        if not events[rid] or events[rid][0] != "PENDING" or events[rid][-1] != requests[rid].status
    }
    if bad_history:
        problems.append(
            f"{len(bad_history)} requests have a state history that does not start PENDING "
            f"and end in their state: {_sample(bad_history)}"
        )
    wrong_outcome = {
        rid
        for rid in want & requests.keys()
        if requests[rid].status in FINAL_REQUEST
        and requests[rid].status != EXPECTED_FINAL[requests[rid].profile_type][0]
    }
    if wrong_outcome:
        problems.append(
            f"{len(wrong_outcome)} requests ended in the wrong final state for their query "
            f"(a kill leaked into a result?): {_sample(wrong_outcome)}"
        )
    return problems


def response_side(world: World, submitted: list[str]) -> list[str]:
    """Every submission imported once, executed to one finished execution, one Result."""
    from response_network.models import Execution, ImportedRequest, Result

    problems: list[str] = []
    want = set(submitted)
    with world.session("response") as s:
        imported = dict(s.execute(select(ImportedRequest.id, ImportedRequest.status)).all())
        profiles = dict(s.execute(select(ImportedRequest.id, ImportedRequest.profile_type)).all())
        results = Counter(s.execute(select(Result.request_id)).scalars())
        result_rows = {
            r.request_id: (r.status, r.batch_id) for r in s.execute(select(Result)).scalars()
        }
        executions = s.execute(
            select(Execution.request_id, Execution.status, Execution.error)
        ).all()
    missing = want - imported.keys()
    if missing:
        problems.append(
            f"response network never imported {len(missing)} requests: {_sample(missing)}"
        )
    extra = imported.keys() - want
    if extra:
        problems.append(f"response network imported {len(extra)} requests never submitted")
    unfinished = {rid for rid in want & imported.keys() if imported[rid] not in FINAL_RESPONSE}
    if unfinished:
        states = Counter(imported[r] for r in unfinished)
        problems.append(f"{len(unfinished)} imported requests are not finished: {dict(states)}")
    no_result = {rid for rid in want if results[rid] == 0}
    if no_result:
        problems.append(f"{len(no_result)} requests have no Result row: {_sample(no_result)}")
    unexported = {rid for rid, (_, batch) in result_rows.items() if batch is None}
    if unexported:
        problems.append(f"{len(unexported)} Results were never exported")
    mismatch = {
        rid for rid, (status, _) in result_rows.items() if imported.get(rid) not in (status, None)
    }
    if mismatch:
        problems.append(f"{len(mismatch)} Results disagree with their request's status")
    wrong = {
        rid
        for rid, (status, _) in result_rows.items()
        if rid in profiles and status != EXPECTED_FINAL[profiles[rid]][1]
    }
    if wrong:
        problems.append(f"{len(wrong)} Results have the wrong status for their query")
    finished = Counter()
    running = set()
    for rid, status, error in executions:
        if status == "RUNNING":
            running.add(rid)
        elif not (status == "FAILED" and error == WORKER_LOST):
            finished[rid] += 1
    if running:
        problems.append(f"{len(running)} executions are still RUNNING: {_sample(running)}")
    twice = {rid for rid, n in finished.items() if n > 1}
    if twice:
        problems.append(
            f"{len(twice)} requests have more than one finished execution: {_sample(twice)}"
        )
    never = {rid for rid in want & imported.keys() if finished[rid] == 0}
    if never:
        problems.append(f"{len(never)} requests have no finished execution")
    return problems


def ledgers(world: World) -> list[str]:
    """Sequence numbers without holes; nothing refused; batch rows match their files."""
    from request_network.models import Batch as RqBatch
    from request_network.models import RejectedBatch as RqRejected
    from response_network.models import Batch as RsBatch
    from response_network.models import RejectedBatch as RsRejected

    problems: list[str] = []
    for net, batch_model, rejected_model in (
        ("request", RqBatch, RqRejected),
        ("response", RsBatch, RsRejected),
    ):
        with world.session(net) as s:
            rows = s.execute(
                select(batch_model.direction, batch_model.stream, batch_model.seq)
            ).all()
            rejected = s.execute(select(rejected_model)).scalars().all()
        seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        for direction, stream, seq in rows:
            seqs[(direction, stream)].append(seq)
        for (direction, stream), got in sorted(seqs.items()):
            if sorted(got) != list(range(1, len(got) + 1)):
                holes = sorted(set(range(1, max(got) + 1)) - set(got))
                problems.append(
                    f"{net}: {direction} {stream} sequence has holes {_sample(holes)} "
                    f"(highest {max(got)})"
                )
        times = Counter(r.filename for r in rejected)
        for r in {r.filename: r for r in rejected}.values():
            again = f" [{times[r.filename]} times]" if times[r.filename] > 1 else ""
            problems.append(
                f"{net}: quarantined {r.filename} ({r.verdict}){again}: {(r.reason or '')[:300]}"
            )
    return problems


def _writer_digests(world: World) -> dict[str, dict[str, str]]:
    """filename → digest of every batch each network recorded as sent."""
    from request_network.models import Batch as RqBatch
    from response_network.models import Batch as RsBatch

    out: dict[str, dict[str, str]] = {}
    for net, model in (("request", RqBatch), ("response", RsBatch)):
        with world.session(net) as s:
            out[net] = dict(
                s.execute(
                    select(model.filename, model.digest).where(model.direction == "out")
                ).all()
            )
    return out


def files(world: World) -> tuple[list[str], dict[str, int]]:
    """Every `*.jsonl` verifies (`ferry transfer verify`) or sits in quarantine with a reason;
    every one is a batch its writer recorded as sent; the inboxes are empty."""
    from transfer.format.digest import file_digest

    problems: list[str] = []
    litter: Counter[str] = Counter()
    sent = _writer_digests(world)
    to_verify: dict[str, list[Path]] = defaultdict(list)  # destination → files
    for net in NETWORKS:
        network = world.networks[net]
        for path in sorted(network.transfer_dir.rglob("*")):
            if path.is_dir():
                continue
            name = path.name
            if name.startswith("."):
                litter[f"{net}: hidden temp/part files"] += 1
                continue
            if not name.endswith(".jsonl"):
                continue
            if path.parent == network.quarantine:
                if not name.endswith((".reason.json", ".sha256")):
                    reason = path.with_name(name + ".reason.json")
                    try:
                        reasons = orjson.loads(reason.read_bytes()).get("reasons")
                    except (OSError, ValueError):
                        reasons = None
                    if not reasons:
                        problems.append(f"{path} is in quarantine without a readable reason")
                continue
            if path.parent == network.inbox:
                problems.append(f"{path} is still waiting in the inbox after the system settled")
            try:
                parsed = parse_batch_filename(name)
            except ValueError:
                problems.append(f"{path} has a final batch name that does not parse")
                continue
            writer = parsed.source
            to_verify[PEER[writer]].append(path)
            known = sent.get(writer, {}).get(name)
            if known is None:
                problems.append(
                    f"{path.relative_to(world.base)}: a batch file the {writer} network never "
                    "recorded as sent (its export was killed after publishing it)"
                )
            elif file_digest(path) != known:
                problems.append(f"{path} differs from the digest its writer recorded")
            if not path.with_name(name + ".sha256").is_file():
                litter[f"{net}: batch files without a sidecar"] += 1
    for destination, paths in sorted(to_verify.items()):
        writer = PEER[destination]
        for i in range(0, len(paths), 200):
            chunk = paths[i : i + 200]
            run = world.run(
                f"verify.{destination}",
                [
                    "transfer",
                    "verify",
                    *map(str, chunk),
                    "--destination",
                    destination,
                    "--public-key",
                    str(world.networks[writer].keys_dir),
                ],
                world.operator_env,
            )
            if run.returncode != 0:
                problems.append(f"`ferry transfer verify` failed:\n{run.stderr[-4000:]}")
    return problems, dict(litter)


def transfer_status(world: World) -> list[str]:
    """`ferry transfer status` on both sides: healthy, no gaps, nothing refused by the peer."""
    problems = []
    for net in NETWORKS:
        run = world.step(f"{net}.status")
        status = run.json()
        if not status["healthy"]:
            rejected = [u["file"] for u in status["unacked"] if u["peer_rejected"]]
            problems.append(
                f"{net}: `ferry transfer status` is unhealthy: gaps={status['gaps']}, "
                f"quarantined={len(status['quarantined'])}, peer-rejected={rejected}"
            )
        if status["inbox"]:
            problems.append(f"{net}: files left in the inbox: {status['inbox']}")
    return problems
