"""Both networks on embedded defaults in one directory, driven step by step as processes.

`World` holds the two networks (SQLite databases, transfer directories, signing keys, an
osmem-server clone as the search engine), runs each step of the cycle as its own process
(forked from the `fault_zygote` fork server, or exec'd as the real `ferry` console script)
and can SIGKILL it after a delay or at a named fault point. The operator carries with
`ferry transfer carry` straight from one network's outbox into the other's inbox.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fault_process import (
    ROOT,
    STEP_TIMEOUT_S,
    StepRun,
    Zygote,
    base_environment,
    exec_ferry,
    read_text,
)
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

DEMO_DATA = ROOT / "ferry" / "demo_data"
NETWORKS = ("request", "response")
PEER = {"request": "response", "response": "request"}

#: A profile type whose index does not exist: its requests end FAILED on the response side.
GHOST_PROFILE = {
    "name": "ghost",
    "index": "ghost-index-that-does-not-exist",
    "fields": {"title": "text", "year": "integer"},
    "return_fields": ["title", "year"],
    "max_size": 10,
    "rate_limits": {"minute": 100000, "hour": 100000, "day": 100000},
}
USERS = {"alice": "articles", "ghost": "ghost"}

#: The steps of one cycle, in order. Each is one `ferry` command (see `World.argv`).
CYCLE = (
    "request.export",
    "carry.requests",
    "response.import",
    "response.execute",
    "response.export",
    "carry.results",
    "request.import",
)


@dataclass
class Network:
    name: str
    base: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.base / f"{self.name}.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def transfer_dir(self) -> Path:
        return self.base / self.name / "transfer"

    @property
    def outbox(self) -> Path:
        return self.transfer_dir / "outbox"

    @property
    def inbox(self) -> Path:
        return self.transfer_dir / "inbox"

    @property
    def quarantine(self) -> Path:
        return self.transfer_dir / "quarantine"

    @property
    def keys_dir(self) -> Path:
        return self.base / "keys" / self.name


class World:
    """Two networks, a search engine and a log of every process run."""

    def __init__(
        self,
        base: Path,
        search_url: str,
        zygote: Zygote,
        settings: dict[str, str] | None = None,
    ) -> None:
        """`settings`: extra settings of both networks, unprefixed (`BATCH_MAX_RECORDS`)."""
        self.base = base
        self.logs = base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.search_url = search_url
        self.networks = {n: Network(n, base) for n in NETWORKS}
        common = base_environment()
        for net in NETWORKS:
            p = f"FERRY_{net.upper()}_"
            peer = self.networks[PEER[net]]
            self.networks[net].env = (
                common
                | {
                    p + "MODE": "demo",
                    p + "DATABASE_URL": self.networks[net].database_url,
                    p + "REDIS_URL": "fakeredis://",
                    p + "BROKER_URL": "memory://",
                    p + "CELERY_EAGER": "true",
                    p + "TRANSFER_DIR": str(self.networks[net].transfer_dir),
                    p + "SIGNING_KEY": str(self.networks[net].keys_dir / f"{net}.ed25519.pem"),
                    p + "PEER_PUBLIC_KEYS": orjson.dumps([str(peer.keys_dir)]).decode(),
                    p + "BCRYPT_ROUNDS": "4",
                }
                | {p + k: v for k, v in (settings or {}).items()}
            )
        self.networks["response"].env |= {
            "FERRY_RESPONSE_ELASTICSEARCH_URL": search_url,
            "FERRY_RESPONSE_COMPAT_HEADERS": "false",
        }
        self.operator_env = common
        self.runs: list[StepRun] = []
        self._counter = itertools.count()
        self.zygote = zygote

    @property
    def request(self) -> Network:
        return self.networks["request"]

    def session(self, net: str) -> Session:
        """A session on one network's database from the test process (no pooled connection
        outlives it, so nothing here holds the SQLite file between steps)."""
        engine = create_engine(self.networks[net].database_url, poolclass=NullPool)
        return Session(engine, expire_on_commit=False)

    @property
    def response(self) -> Network:
        return self.networks["response"]

    # --- processes -------------------------------------------------------------------------

    def argv(self, step: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of one named step."""
        rq, rs = self.request, self.response
        table: dict[str, tuple[list[str], dict[str, str]]] = {
            "request.export": (["request", "export"], rq.env),
            "request.import": (["request", "import"], rq.env),
            "response.import": (["response", "import"], rs.env),
            "response.execute": (["response", "execute"], rs.env),
            "response.export": (["response", "export"], rs.env),
            "carry.requests": (
                ["transfer", "carry", "--from", str(rq.outbox), "--to", str(rs.inbox)],
                self.operator_env,
            ),
            "carry.results": (
                ["transfer", "carry", "--from", str(rs.outbox), "--to", str(rq.inbox)],
                self.operator_env,
            ),
            "response.requeue_stale": (["job", "response.requeue_stale", "0"], rs.env),
            "request.requeue_unacked": (["job", "request.requeue_unacked", "0"], rq.env),
            "request.resend": (["request", "resend"], rq.env),
            "response.resend": (["response", "resend"], rs.env),
            "request.status": (["transfer", "status", "--network", "request", "--json"], rq.env),
            "response.status": (
                ["transfer", "status", "--network", "response", "--json"],
                rs.env,
            ),
        }
        return table[step]

    def _log_paths(self, name: str) -> tuple[Path, Path]:
        n = next(self._counter)
        return self.logs / f"{n:04d}-{name}.out", self.logs / f"{n:04d}-{name}.err"

    def run(
        self,
        name: str,
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        *,
        kill_after: float | None = None,
        kill_point: str | None = None,
        exec_cli: bool = False,
        timeout: float = STEP_TIMEOUT_S,
    ) -> StepRun:
        """Run one step as a process; SIGKILL it after `kill_after` s or at `kill_point`."""
        if argv is None:
            argv, env = self.argv(name)
        assert env is not None
        out, err = self._log_paths(name)
        if exec_cli:
            assert kill_point is None, "fault points need the fork server"
            run = exec_ferry(name, list(argv), env, out, err, kill_after, timeout)
        else:
            trace = out.with_suffix(".trace")
            reply = self.zygote.run(
                {
                    "argv": list(argv),
                    "env": env,
                    "stdout": str(out),
                    "stderr": str(err),
                    "trace": str(trace),
                    "kill_after": kill_after,
                    "kill_point": kill_point,
                    "timeout": timeout,
                }
            )
            run = StepRun(
                name,
                list(argv),
                reply["returncode"],
                reply["duration"],
                reply["killed"],
                kill_after,
                kill_point,
                reply["timed_out"],
                trace=read_text(trace),
            )
        run.stdout, run.stderr = read_text(out), read_text(err)  # absent if killed before opening
        self.runs.append(run)
        if run.timed_out:
            raise AssertionError(f"{run.describe()} hung past {timeout:.0f} s\n{run.stderr}")
        return run

    def step(
        self,
        name: str,
        argv: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> StepRun:
        """Run a step that must succeed (exit 0)."""
        run = self.run(name, argv, env, **kwargs)
        if run.returncode != 0:
            raise AssertionError(f"{run.describe()} failed\n{run.stdout[-3000:]}{run.stderr}")
        return run

    # --- set-up ----------------------------------------------------------------------------

    def set_up(self) -> None:
        """Keys, migrated databases, profile types, users and the index; identity carried."""
        rs = self.response
        for net in NETWORKS:
            self.step(
                f"keys.{net}",
                ["keys", "generate", "--network", net, "--dir", str(self.networks[net].keys_dir)],
                self.operator_env,
            )
            self.step(f"{net}.db", [net, "db", "upgrade"], self.networks[net].env)
        profiles = orjson.loads((DEMO_DATA / "profile_types.json").read_bytes())
        profile_file = self.base / "profile_types.json"
        profile_file.write_bytes(orjson.dumps([*profiles, GHOST_PROFILE]))
        self.step(
            "response.profile_types",
            ["response", "profile-types", "load", str(profile_file)],
            rs.env,
        )
        for user, profile in USERS.items():
            self.step(
                f"response.user.{user}",
                ["response", "users", "create", "--username", user, "--profile-type", profile],
                rs.env | {"FERRY_NEW_USER_PASSWORD": f"{user}-fault-password"},
            )
        self.step(
            "response.index",
            [
                "response",
                "index",
                "load",
                str(DEMO_DATA / "articles.jsonl"),
                "--index",
                "articles",
            ],
            rs.env,
        )
        identity = self.step("response.export").json()
        assert sorted(b["stream"] for b in identity["batches"]) == ["profile_types", "users"]
        self.step("carry.results")
        imported = self.step("request.import").json()
        assert [f["status"] for f in imported["files"]] == ["imported", "imported"], imported

    # --- users -----------------------------------------------------------------------------

    def submit(self, count: int, *, seed: int) -> list[str]:
        """`count` requests, submitted through the request network's own service."""
        import random

        from request_network.models import User
        from request_network.services.requests import submit

        rng = random.Random(seed)
        ids = []
        with self.session("request") as session, session.begin():
            users = {u.username: u for u in session.scalars(select(User))}
            for _ in range(count):
                if rng.random() < 0.1:
                    user, query = users["ghost"], _ghost_query(rng)
                else:
                    user, query = users["alice"], _articles_query(rng)
                ids.append(
                    submit(user, session=session, profile_type=user.profile_type, query=query).id
                )
        return ids

    # --- files -----------------------------------------------------------------------------

    def batch_files(self) -> Iterator[Path]:
        """Every file under a final batch name (`*.jsonl`) in either transfer directory."""
        for net in NETWORKS:
            yield from sorted(self.networks[net].transfer_dir.rglob("*.jsonl"))


_WORDS = ("ferry", "harbour", "lighthouse", "tugboat", "bridge", "canal", "storm")


def _articles_query(rng) -> dict:
    return {
        "query": {
            "any": [
                {"match": {"field": "title", "value": rng.choice(_WORDS)}},
                {"range": {"field": "year", "gte": rng.randrange(1950, 2020)}},
            ]
        },
        "size": rng.randrange(1, 20),
    }


def _ghost_query(rng) -> dict:
    return {"query": {"match": {"field": "title", "value": rng.choice(_WORDS)}}, "size": 5}
