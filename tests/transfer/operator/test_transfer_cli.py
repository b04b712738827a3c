"""The operator's commands as an operator runs them (real processes, embedded SQLite):
`ferry transfer status|carry|verify` and `ferry request|response resend`."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.conftest import network_settings
from tests.e2e.e2e_support import free_port
from tests.test_cli import FERRY, ROOT, clean_env, demo_env, ferry
from transfer.format import Record, write_batch
from transfer.format.keys import load_signing_key

PROFILES = ROOT / "ferry/demo_data/profile_types.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ok(*args: str, env: dict[str, str]):
    run = ferry(*args, env=env)
    assert run.returncode == 0, f"ferry {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run


def status(network: str, env: dict[str, str]) -> dict:
    return orjson.loads(ok("transfer", "status", "--network", network, "--json", env=env).stdout)


def test_status_carry_and_resend_through_a_whole_exchange(tmp_path, keys):
    env = demo_env(tmp_path, keys) | {"FERRY_NEW_USER_PASSWORD": "a-fine-password"}
    rs_out, rq_in, media = (
        tmp_path / "response/outbox",
        tmp_path / "request/inbox",
        tmp_path / "usb",
    )
    for net in ("request", "response"):
        ok(net, "db", "upgrade", env=env)
    ok("response", "profile-types", "load", str(PROFILES), env=env)
    ok("response", "users", "create", "--username", "amy", "--profile-type", "articles", env=env)
    exported = orjson.loads(ok("response", "export", env=env).stdout)["batches"]
    assert sorted(b["stream"] for b in exported) == ["profile_types", "users"]

    text = ok("transfer", "status", "--network", "response", env=env).stdout
    assert "unacked batches: 2" in text and "outbox (waiting to be carried): 2" in text
    before = status("response", env)
    assert {s["stream"]: s["last_seq"] for s in before["sent"]} == {"profile_types": 1, "users": 1}
    assert len(before["outbox"]) == 2 and before["received"] == []

    carried = ok("transfer", "carry", "--from", str(rs_out), "--to", str(media), env=env)
    report = orjson.loads(carried.stdout)
    assert report["summary"]["files"] == 2 and report["summary"]["archived"] == 2
    assert "carried 2 files" in carried.stderr
    after = status("response", env)
    assert after["outbox"] == [] and sorted(after["carried"]) == sorted(before["outbox"])
    assert {u["kept_in"] for u in after["unacked"]} == {"carried"}

    # resend: the very same bytes come back into the outbox
    resent = orjson.loads(ok("response", "resend", env=env).stdout)
    assert resent["restored"] == 2 and resent["failed"] == 0
    for item in resent["batches"]:
        assert sha256(rs_out / item["file"]) == item["sha256"] == item["expected_sha256"]
        assert (rs_out / item["file"]).read_bytes() == (
            rs_out / "carried" / item["file"]
        ).read_bytes()
    again = orjson.loads(
        ok("transfer", "carry", "--from", str(rs_out), "--to", str(media), env=env).stdout
    )
    assert [s["reason"] for s in again["skipped"]] == ["already there"] * 2
    assert again["copied"] == [] and not list(rs_out.glob("*.jsonl"))

    # media → the request network's inbox: the media keep their files
    ok("transfer", "carry", "--from", str(media), "--to", str(rq_in), env=env)
    assert len(list(media.glob("*.jsonl"))) == 2
    assert len(status("request", env)["inbox"]) == 2
    ok("request", "import", env=env)
    received = status("request", env)["received"]
    assert {r["stream"]: (r["last_seq"], r["gaps"]) for r in received} == {
        "profile_types": (1, []),
        "users": (1, []),
    }

    # nothing to send on the request side but acks: an acks batch carries them back
    acks = orjson.loads(ok("request", "export", env=env).stdout)
    assert [b["stream"] for b in acks["batches"]] == ["acks"]
    ok(
        "transfer",
        "carry",
        "--from",
        str(tmp_path / "request/outbox"),
        "--to",
        str(tmp_path / "response/inbox"),
        env=env,
    )
    imported = orjson.loads(ok("response", "import", env=env).stdout)
    assert sorted(imported["retired"]) == sorted(before["outbox"])
    final = status("response", env)
    assert final["unacked"] == [] and final["carried"] == [] and final["healthy"] is True
    assert sorted(p.name for p in (rs_out / "acked").glob("*.jsonl")) == sorted(before["outbox"])
    nothing = ferry("response", "resend", env=env)
    assert nothing.returncode == 0 and "nothing to resend" in nothing.stderr


def test_resend_says_plainly_when_the_kept_file_is_gone(tmp_path, keys):
    env = demo_env(tmp_path, keys)
    rs_out = tmp_path / "response/outbox"
    ok("response", "db", "upgrade", env=env)
    ok("response", "profile-types", "load", str(PROFILES), env=env)
    (batch,) = orjson.loads(ok("response", "export", env=env).stdout)["batches"]
    ok("transfer", "carry", "--from", str(rs_out), "--to", str(tmp_path / "usb"), env=env)
    (rs_out / "carried" / Path(batch["file"]).name).unlink()
    run = ferry("response", "resend", env=env)
    assert run.returncode == 1
    assert "kept file is gone" in run.stderr and "Traceback" not in run.stderr
    one = ferry("response", "resend", "--seq", "1", "--stream", "profile_types", env=env)
    assert one.returncode == 1
    unknown = ferry("response", "resend", "--seq", "9", env=env)
    assert unknown.returncode == 1 and "no batch with seq 9" in unknown.stderr


def test_the_flag_job_lists_old_unacknowledged_batches(tmp_path, keys):
    env = demo_env(tmp_path, keys)
    ok("response", "db", "upgrade", env=env)
    ok("response", "profile-types", "load", str(PROFILES), env=env)
    ok("response", "export", env=env)
    from response_network import jobs

    settings = network_settings(
        "response",
        tmp_path,
        keys,
        transfer_dir=tmp_path / "response",
        unacked_flag_hours=1,
    )
    assert jobs.flag_unacked(settings)["unacked"] == []
    with sqlite3.connect(tmp_path / "response.db") as db:
        old = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S.%f")
        db.execute("UPDATE batches SET created_at = ?", (old,))
    (flagged,) = jobs.flag_unacked(settings)["unacked"]
    assert (flagged["stream"], flagged["seq"], flagged["newly_flagged"]) == (
        "profile_types",
        1,
        True,
    )
    assert flagged["age_seconds"] >= 7000
    assert jobs.flag_unacked(settings)["unacked"][0]["newly_flagged"] is False


def _request_record(n: int, **data) -> Record:
    base = {
        "user_id": "u1",
        "profile_type": "articles",
        "query": {"query": {}},
        "submitted_at": "2026-01-01T00:00:00Z",
    }
    return Record("request", f"0190a3b4-0000-7000-8000-{n:012d}", 1, base | data)


def _one_request_batch(directory: Path, key):
    """A valid `requests` batch of one record, seq 1, from the request network."""
    return write_batch(
        directory,
        stream="requests",
        source="request",
        destination="response",
        seq=1,
        prev_digest=None,
        signing_key=key,
        records=[_request_record(1)],
    )


def test_verify_lists_every_failure_of_every_file(tmp_path, keys):
    key = load_signing_key(keys["request"] / "request.ed25519.pem")
    out = tmp_path / "out"
    out.mkdir()

    def batch(seq: int, records: list[Record]):
        return write_batch(
            out,
            stream="requests",
            source="request",
            destination="response",
            seq=seq,
            prev_digest=None,
            signing_key=key,
            records=records,
        )

    good = batch(1, [_request_record(1)])
    bad_schema = batch(2, [_request_record(2, user_id=""), _request_record(3), _request_record(4)])
    renamed = batch(3, [_request_record(5)])
    unsafe = renamed.path.with_name("requests from elsewhere.jsonl")
    renamed.path.rename(unsafe)
    args = ["--destination", "response", "--public-key", str(keys["request"])]
    run = ferry(
        "transfer", "verify", str(good.path), str(bad_schema.path), str(unsafe), *args,
        "--max-records", "2",
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stdout.startswith(f"OK    {good.path}")
    err = run.stderr
    assert f"FAIL  {bad_schema.path}" in err and f"FAIL  {unsafe}" in err
    assert "user_id" in err, "schema"
    assert "more than 2 records" in err or "exceeds the limit of 2 records" in err, "limits"
    assert "unsafe or malformed file name" in err, "name"
    assert "2 of 3 files failed" in err
    one_by_one = ferry(
        "transfer", "verify", str(good.path), str(bad_schema.path), str(unsafe), *args,
        "--max-records", "2", "--jobs", "1",
    )  # fmt: skip
    assert (one_by_one.returncode, one_by_one.stdout, one_by_one.stderr) == (1, run.stdout, err)
    all_good = ferry("transfer", "verify", str(good.path), *args)
    assert all_good.returncode == 0, all_good.stderr


def test_carry_refuses_to_overwrite_and_exits_1(tmp_path, keys):
    key = load_signing_key(keys["request"] / "request.ed25519.pem")
    outbox, media = tmp_path / "outbox", tmp_path / "usb"
    outbox.mkdir()
    media.mkdir()
    written = _one_request_batch(outbox, key)
    (media / written.path.name).write_bytes(b"another file\n")
    run = ferry("transfer", "carry", "--from", str(outbox), "--to", str(media))
    assert run.returncode == 1
    report = orjson.loads(run.stdout)
    assert report["refused"][0]["reason"] == "a different file of that name is there"
    assert (media / written.path.name).read_bytes() == b"another file\n"
    assert written.path.exists()


def test_a_transfer_directory_not_created_yet_reads_as_empty(tmp_path, keys):
    """carry, verify and status on a side that has never started: one line, exit 0."""
    env = demo_env(tmp_path, keys)
    ok("request", "db", "upgrade", env=env)
    transfer_dir = tmp_path / "request"
    shutil.rmtree(transfer_dir)
    outbox, media = transfer_dir / "outbox", tmp_path / "usb"

    carried = ok("transfer", "carry", "--from", str(outbox), "--to", str(media), env=env)
    assert carried.stderr.strip() == f"nothing to carry: {outbox} does not exist yet"
    assert orjson.loads(carried.stdout)["summary"]["files"] == 0
    assert not media.exists()

    checked = ok(
        "transfer", "verify", str(outbox), "--destination", "response",
        "--public-key", str(keys["request"]), env=env,
    )  # fmt: skip
    assert checked.stderr.strip() == f"nothing to verify: {outbox} does not exist yet"

    text = ok("transfer", "status", "--network", "request", env=env).stdout
    missing = [str(transfer_dir / d) for d in ("inbox", "outbox", "quarantine")]
    assert f"not created yet, read as empty: {', '.join(missing)}" in text
    assert status("request", env)["not_created"] == missing


def test_verify_takes_a_directory_of_batches(tmp_path, keys):
    key = load_signing_key(keys["request"] / "request.ed25519.pem")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    good = _one_request_batch(outbox, key)
    (outbox / "not a batch.jsonl").write_bytes(b"{}\n")
    run = ferry(
        "transfer", "verify", str(outbox), "--destination", "response",
        "--public-key", str(keys["request"]),
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stdout.startswith(f"OK    {good.path}")
    assert f"FAIL  {outbox / 'not a batch.jsonl'}" in run.stderr


@pytest.mark.parametrize("command", ["db upgrade", "serve", "worker", "beat"])
def test_each_network_process_lays_out_its_transfer_directory(tmp_path, keys, command):
    """The directories exist with mode 2770 once a network process starts, whatever the
    umask; one that exists keeps the mode it was given."""
    env = demo_env(tmp_path, keys) | {
        "FERRY_REQUEST_BROKER_URL": "memory://",
        "FERRY_REQUEST_CELERY_EAGER": "true",
    }
    base = tmp_path / "request"
    base.mkdir(mode=0o700)
    (base / "inbox").mkdir(mode=0o700)
    argv = ["request", *command.split()]
    if command == "serve":
        argv += ["--port", str(free_port())]
    expected = [
        base / d for d in ("outbox", "outbox/carried", "outbox/acked", "quarantine", "processed")
    ]
    process = subprocess.Popen(
        [FERRY, *argv], env=clean_env(env), cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.umask(0o077),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # bounds a hang only
        while not all(d.is_dir() for d in expected) and process.poll() is None:
            assert time.monotonic() < deadline, f"ferry {command} made no transfer directories"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.terminate()
        _, err = process.communicate(timeout=60)
    assert all(d.is_dir() for d in expected), err
    assert {stat.S_IMODE(d.stat().st_mode) for d in expected} == {0o2770}
    assert stat.S_IMODE((base / "inbox").stat().st_mode) == 0o700
    assert stat.S_IMODE(base.stat().st_mode) == 0o700


def test_a_file_in_the_way_of_the_transfer_directory_is_one_clear_error(tmp_path, keys):
    env = demo_env(tmp_path, keys)
    (tmp_path / "request").mkdir()
    (tmp_path / "request" / "outbox").write_text("not a directory")
    run = ferry("request", "db", "upgrade", env=env)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'request' / 'outbox'} is in the way of the transfer directory: "
        "not a directory"
    )
