"""The `ferry` console script, run as a user runs it: a real process, real exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

FERRY = shutil.which("ferry") or str(Path(sys.executable).parent / "ferry")
ROOT = Path(__file__).resolve().parents[1]


def clean_env(env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment without its FERRY_ settings, plus `env`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")} | (env or {})


def ferry(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FERRY, *args],
        capture_output=True,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def demo_env(tmp_path: Path, keys: dict[str, Path]) -> dict[str, str]:
    env = {}
    for net, peer in (("request", "response"), ("response", "request")):
        p = f"FERRY_{net.upper()}_"
        env |= {
            p + "MODE": "demo",
            p + "DATABASE_URL": f"sqlite:///{tmp_path}/{net}.db",
            p + "REDIS_URL": "fakeredis://",
            p + "TRANSFER_DIR": str(tmp_path / net),
            p + "SIGNING_KEY": str(keys[net] / f"{net}.ed25519.pem"),
            p + "PEER_PUBLIC_KEYS": orjson.dumps([str(keys[peer])]).decode(),
            p + "BCRYPT_ROUNDS": "4",
        }
    return env


def test_demo_runs_the_whole_cycle(tmp_path):
    run = ferry("demo", "--workdir", str(tmp_path / "demo"), timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for step in (
        "Request batch written",
        "sha256",
        "carries it",
        "Imported on the response",
        "Executed against the search engine",
        "Results exported",
        "alice reads",
    ):
        assert step in out, f"narration lacks {step!r}:\n{out}"
    assert "demo ok" in out


def test_placeholder_secret_is_refused_outside_the_demo(tmp_path):
    run = ferry(
        "request", "export", env={"FERRY_REQUEST_DATABASE_URL": f"sqlite:///{tmp_path}/r.db"}
    )
    assert run.returncode == 1
    assert "jwt_secret is a placeholder" in run.stderr
    assert "Traceback" not in run.stderr


def test_users_create_reports_an_unknown_profile_type(tmp_path, keys):
    env = demo_env(tmp_path, keys) | {"FERRY_NEW_USER_PASSWORD": "a-fine-password"}
    assert ferry("response", "db", "upgrade", env=env).returncode == 0
    run = ferry(
        "response", "users", "create", "--username", "zed", "--profile-type", "nope", env=env
    )
    assert run.returncode == 1
    assert "unknown profile type 'nope'" in run.stderr
    loaded = ferry(
        "response",
        "profile-types",
        "load",
        str(ROOT / "ferry/demo_data/profile_types.json"),
        env=env,
    )
    assert loaded.returncode == 0, loaded.stderr
    made = ferry(
        "response", "users", "create", "--username", "zed", "--profile-type", "articles", env=env
    )
    assert made.returncode == 0, made.stderr
    assert orjson.loads(made.stdout)["username"] == "zed"
    assert "a-fine-password" not in made.stdout + made.stderr


def test_profile_types_load_names_the_bad_item(tmp_path, keys):
    env = demo_env(tmp_path, keys)
    assert ferry("response", "db", "upgrade", env=env).returncode == 0
    bad = tmp_path / "profiles.json"
    bad.write_text(
        '[{"name": "x", "index": "i", "fields": {"a": "text"}, '
        '"return_fields": ["b"], "max_size": 5, '
        '"rate_limits": {"minute": 1, "hour": 1, "day": 1}}]'
    )
    run = ferry("response", "profile-types", "load", str(bad), env=env)
    assert run.returncode == 1
    assert "item 0" in run.stderr


def test_keys_generate_never_overwrites(tmp_path):
    first = ferry("keys", "generate", "--network", "request", "--dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    private = Path(orjson.loads(first.stdout)["private_key"])
    assert private.stat().st_mode & 0o777 == 0o600
    before = private.read_bytes()
    second = ferry("keys", "generate", "--network", "request", "--dir", str(tmp_path))
    assert second.returncode == 1
    assert private.read_bytes() == before


def test_transfer_verify_passes_good_files_and_lists_every_failure(tmp_path, keys):
    env = demo_env(tmp_path, keys)
    from transfer.format import Record, write_batch
    from transfer.format.keys import load_signing_key

    key = load_signing_key(keys["request"] / "request.ed25519.pem")
    outbox = tmp_path / "out"
    outbox.mkdir()
    good = write_batch(
        outbox,
        stream="requests",
        source="request",
        destination="response",
        seq=1,
        prev_digest=None,
        signing_key=key,
        records=[
            Record(
                "request",
                "0190a3b4-0000-7000-8000-000000000001",
                1,
                {
                    "user_id": "u1",
                    "profile_type": "articles",
                    "query": {"query": {}},
                    "submitted_at": "2026-01-01T00:00:00Z",
                },
            )
        ],
    )
    ok = ferry(
        "transfer",
        "verify",
        str(good.path),
        "--destination",
        "response",
        "--public-key",
        str(keys["request"]),
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK")

    wrong_dest = ferry(
        "transfer",
        "verify",
        str(good.path),
        "--destination",
        "request",
        "--public-key",
        str(keys["response"]),
        env=env,
    )
    assert wrong_dest.returncode == 1
    assert "destination" in wrong_dest.stderr
    assert "key" in wrong_dest.stderr, "both failures are listed, not only the first"


def test_step_commands_take_the_transfer_dir_option(tmp_path, keys):
    env = demo_env(tmp_path, keys) | {"FERRY_NEW_USER_PASSWORD": "another-password"}
    assert ferry("response", "db", "upgrade", env=env).returncode == 0
    assert (
        ferry(
            "response",
            "profile-types",
            "load",
            str(ROOT / "ferry/demo_data/profile_types.json"),
            env=env,
        ).returncode
        == 0
    )
    assert (
        ferry(
            "response",
            "users",
            "create",
            "--username",
            "amy",
            "--profile-type",
            "articles",
            env=env,
        ).returncode
        == 0
    )
    elsewhere = tmp_path / "media"
    run = ferry("response", "export", "--transfer-dir", str(elsewhere), env=env)
    assert run.returncode == 0, run.stderr
    files = [Path(b["file"]) for b in orjson.loads(run.stdout)["batches"]]
    assert {f.name.split("-")[0] for f in files} == {"profile_types", "users"}
    assert all(f.parent == elsewhere / "outbox" and f.exists() for f in files)
    assert not list((tmp_path / "response" / "outbox").glob("*.jsonl"))
    # Nothing changed since: a plain export sends no identity; --full sends it all again.
    again = ferry("response", "export", "--transfer-dir", str(elsewhere), env=env)
    assert [b["stream"] for b in orjson.loads(again.stdout)["batches"]] == []
    full = ferry("response", "export", "--full", "--transfer-dir", str(elsewhere), env=env)
    assert full.returncode == 0, full.stderr
    streams = [b["stream"] for b in orjson.loads(full.stdout)["batches"]]
    assert streams == ["profile_types", "users", "settings"]
