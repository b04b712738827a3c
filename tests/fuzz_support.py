"""The schemathesis fuzz harness's setup (tests/test_fuzz_schemathesis.py): a target per
(network, role, security scheme), its own migrated PostgreSQL databases, settings whose
limits cannot get in the way, the users it acts as, credentials minted for every case, and
`Findings`, which keeps every distinct failure of a run instead of stopping at the first.

Both apps run in-process (ASGI, no server) on real PostgreSQL and Redis, in production mode
with `api_docs=True` so that /openapi.json is served.
"""

from __future__ import annotations

import itertools
import os
import shutil
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import schemathesis
from schemathesis import CheckFunction
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.engine.observations import BodyUrlEntry, LocationHeaderEntry, Observations
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case
from sqlalchemy import create_engine, text

from request_network.app import create_app as request_app
from request_network.models import User as RequestUser
from request_network.services import api_keys
from request_network.settings import RequestSettings
from response_network.app import create_app as response_app
from response_network.settings import ResponseSettings
from shared.cache import get_redis
from shared.db import POOL_SIZE, get_engine, reading, transaction
from shared.migrate import upgrade
from shared.problems import Problem
from shared.ratelimit.policy import MAX_LIMIT
from shared.security.api_keys import scopes_for_role
from shared.security.tokens import issue_token
from tests.conftest import PG_ADMIN_URL, REDIS_URL, _fresh_database
from tests.request_network import request_api_helpers as rq
from tests.response_network import response_api_helpers as rs
from transfer.format.keys import generate_keypair
from transfer.protocol.config import make_transfer_dirs

#: The one seed of every run. Hypothesis is also derandomized and keeps no example database,
#: so a run replays the same cases (up to what the server answers: ids, times).
SEED = 20240501
#: Generated cases per operation in the fuzzing phase (the examples and coverage phases add
#: their own, a fixed set per operation).
MAX_EXAMPLES = 15
#: Scenarios of the stateful phase per target, and the most calls in one scenario.
STATEFUL_EXAMPLES = 25
STATEFUL_STEPS = 10

BEARER = "OAuth2PasswordBearer"  # the OpenAPI security scheme names FastAPI gives them
API_KEY = "APIKeyHeader"
#: Far above what a fuzz run can spend; admission and login throttling stay out of the way.
HIGH = 1_000_000


@dataclass(frozen=True)
class Target:
    """One fuzz run: which API, as whom, with which of its security schemes."""

    network: str  # "request" | "response"
    role: str  # "admin" | "user"
    scheme: str  # BEARER | API_KEY

    @property
    def id(self) -> str:
        kind = "bearer" if self.scheme == BEARER else "api-key"
        return f"{self.network}-{self.role}-{kind}"


# PUT /api/v1/operator/inbox/{name} takes the batch file's bytes as `application/x-ndjson`
# (`format: binary`): sent as generated, like any other binary body.
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")

#: The request API takes a bearer token or an API key (never both); each is fuzzed on its own.
#: The response API knows bearer tokens only.
TARGETS = [
    Target(network, role, scheme)
    for network, schemes in (("request", (BEARER, API_KEY)), ("response", (BEARER,)))
    for role in ("admin", "user")
    for scheme in schemes
]


def fuzz_config(target: Target) -> schemathesis.Config:
    """Every phase (examples, coverage, fuzzing, stateful) and every check, seeded.

    One exception: with bearer tokens, schemathesis's `ignored_auth` is replaced by
    `bearer_auth_enforced` (see there), because schemathesis models only `apiKey` and `http`
    schemes as credentials it can remove, not the OAuth2 password flow's bearer token.
    Health checks are off: they time the generation, which a fuzz run in CI must not depend on.
    """
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "checks": {"ignored_auth": {"enabled": target.scheme != BEARER}},
            "operations": STATEFUL_RULES,
        }
    )


ACCEPTED_OR_REFUSED = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
# Where a reply depends on state the schema cannot describe, the check is told so:
STATEFUL_RULES = [
    {  # a submission names a profile type the user holds and a query that fits it
        "include-path": "/api/v1/requests",
        "include-method": "POST",
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_REFUSED}},
    },
    {  # only a signed batch addressed to this network passes verification
        "include-path": "/api/v1/operator/inbox/{name}",
        "include-method": "PUT",
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_REFUSED}},
    },
    {  # HTTP allows any extra header; schemathesis's coverage phase counts one next to a
        # header parameter (Last-Event-ID) as a schema violation (schemathesis#2726). Bad
        # Last-Event-ID values are refused (the hostile-input walk checks every one).
        "include-path": "/api/v1/notifications/stream",
        "include-method": "GET",
        "checks": {"negative_data_rejection": {"enabled": False}},
    },
    {  # a webhook's URL must be on the admins' allow-list (a setting, empty here) and its
        # events kinds the caller hears of: what the schema allows may still be refused
        "include-path": "/api/v1/webhooks",
        "include-method": "POST",
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_REFUSED}},
    },
    {
        "include-path": "/api/v1/webhooks/{webhook_id}",
        "include-method": "PATCH",
        "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_REFUSED}},
    },
    {  # a response exists once the answer has crossed the gap twice, not on submission
        "include-path": "/api/v1/requests/{request_id}/response",
        "include-method": "GET",
        "checks": {"ensure_resource_availability": {"enabled": False}},
    },
]


# Databases and Redis --------------------------------------------------------------------


def fresh_databases() -> dict[str, str]:
    """Migrated databases of both networks for this module alone (names unique to the
    process, so a concurrent test run cannot drop them under us)."""
    tag = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    urls = {}
    for net in ("request", "response"):
        urls[net] = _fresh_database(f"ferry_fuzz_{net}_{tag}")
        upgrade(net, urls[net])
    return urls


def drop_databases(urls: dict[str, str]) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for url in urls.values():
            get_engine(url).dispose()
            name = url.rsplit("/", 1)[1]
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def empty_databases(urls: dict[str, str]) -> None:
    rq.truncate_request_db(urls["request"])
    rs.empty_response_db(urls["response"])


def clear_redis() -> None:
    """What the API leaves in the test Redis DB: login counters, locks, revocations and
    rate-limit windows (`auth:*`, `rl:*`, as every API test clears them) and cached
    responses (`resp:*`)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        rq.clear_auth_keys(client)
        with suppress(redis.RedisError):
            keys = list(client.scan_iter(match="resp:*", count=500))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


# Settings -------------------------------------------------------------------------------


def _common(base: Path, keys: dict[str, Path], net: str) -> dict[str, Any]:
    peer = "response" if net == "request" else "request"
    return dict(
        redis_url=REDIS_URL,
        api_docs=True,  # serves /openapi.json in production mode
        transfer_dir=base / net / "transfer",
        signing_key=keys[net] / f"{net}.ed25519.pem",
        peer_public_keys=[keys[peer]],
        # Login throttling and lockout: never reached by a fuzz run.
        login_max_failures=HIGH,
        login_attempts_per_minute_per_ip=HIGH,
        login_attempts_per_minute_per_account=HIGH,
        # Admission: the whole pool, a deep queue and a long wait (calls come one at a time).
        api_concurrency=POOL_SIZE,
        api_queue=HIGH,
        api_queue_wait_s=600.0,
        # A notification stream answers and ends after one look (it would never end).
        notification_stream_seconds=0.05,
    )


def make_keys(base: Path) -> dict[str, Path]:
    out = {}
    for net in ("request", "response"):
        generate_keypair(base / "keys" / net, net)
        out[net] = base / "keys" / net
    return out


# Credentials ----------------------------------------------------------------------------


@dataclass
class Credentials:
    """Fresh credentials of one user for every case.

    A bearer token is issued per case, so a fuzzed `POST /auth/logout` (which revokes the
    token it was sent with) cannot lock the rest of the run out. The API key is created once
    through the service that the API uses; after a fuzzed `DELETE /api-keys/{key_id}` that
    succeeded (it may have revoked this key) it is checked, and replaced if revoked. Either
    way each case carries exactly one credential.
    """

    target: Target
    settings: RequestSettings | ResponseSettings
    user_id: str
    api_key: str | None = None
    minted_keys: int = 0
    key_may_be_revoked: bool = False

    def after_call(self, context: Any, case: schemathesis.Case, response: Any) -> None:
        """schemathesis's `after_call` hook: notes a successful key revocation."""
        revoking = case.method.upper() == "DELETE" and case.path == "/api/v1/api-keys/{key_id}"
        if revoking and 200 <= response.status_code < 300:
            self.key_may_be_revoked = True

    def header(self) -> tuple[str, str]:
        if self.target.scheme == BEARER:
            token, _ = issue_token(
                subject=self.user_id,
                role=self.target.role,
                secret=self.settings.jwt_secret.get_secret_value(),
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
                minutes=60,
            )
            return "Authorization", f"Bearer {token}"
        if self.key_may_be_revoked:
            self.key_may_be_revoked = False
            if self.api_key is not None and not self._key_works():
                self.api_key = None
        if self.api_key is None:
            self.api_key = self._create_key()
        return "X-API-Key", self.api_key

    def _key_works(self) -> bool:
        cache = get_redis(self.settings.redis_url)
        with reading(self.settings.database_url) as session:
            try:
                api_keys.authenticate_key(self.settings, cache, self.api_key, session=session)
            except Problem:
                return False
        return True

    def _create_key(self) -> str:
        cache = get_redis(self.settings.redis_url)
        with transaction(self.settings.database_url) as session:
            _, key = api_keys.create_key(
                self.settings,
                cache,
                session=session,
                user=session.get(RequestUser, self.user_id),
                name=f"fuzz-{self.minted_keys}",
                scopes=sorted(scopes_for_role(self.target.role)),
                expires_in_days=1,
            )
        self.minted_keys += 1
        return key


def declares_security(operation: Any) -> bool:
    return bool(operation.definition.raw.get("security"))


# Checks ---------------------------------------------------------------------------------

INVALID_BEARER = "Bearer SCHEMATHESIS-INVALID-VALUE"
#: A submission the request API accepts (the seeded profile type, a query it can run).
VALID_SUBMISSION = {"profile_type": "articles", "query": rq.VALID_QUERY}


def bearer_auth_enforced() -> CheckFunction:
    """`ignored_auth` for the bearer scheme, once per operation: a 2xx that a secured
    operation gave a bearer token must turn into 401 or 403 when the same request is sent
    without credentials, and with an invalid token.

    schemathesis's own `ignored_auth` knows only the credentials it can remove (`apiKey` and
    `http` schemes); FastAPI declares the bearer token as an OAuth2 password flow, so with a
    bearer token that check would "remove" the absent X-API-Key, resend the token and call
    the 200 a missing authentication (a false finding), and on the response API (OAuth2
    only) it checks nothing at all.
    """
    confirmed: set[str] = set()

    def bearer_auth_enforced(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
        if not declares_security(case.operation) or not 200 <= response.status_code < 300:
            return None
        # As `ignored_auth` does: not for the coverage phase's request-shape probes (e.g. an
        # OPTIONS sent to a POST operation), nor when an invalid path parameter may have
        # missed the operation's route.
        if is_unexpected_http_status_case(case) or (
            case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)
        ):
            return None
        if case.operation.label in confirmed:
            return None
        headers = dict(case.headers or {})
        if not any(name.lower() == "authorization" for name in headers):
            return None
        bare = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "x-api-key")}
        for scenario, probe_headers in (
            ("without credentials", bare),
            ("with an invalid bearer token", {**bare, "Authorization": INVALID_BEARER}),
        ):
            probe = case.derive(headers=probe_headers)
            reply = probe.call()
            if reply.status_code not in (401, 403):
                raise AssertionError(
                    f"{case.operation.label} ignores authentication: {scenario} it answered "
                    f"{reply.status_code}, expected 401 or 403.\n"
                    f"Probe: {probe.as_curl_command()}\n[{reply.status_code}] {reply.text[:300]}"
                )
        confirmed.add(case.operation.label)
        return None

    return bearer_auth_enforced


# Findings -------------------------------------------------------------------------------


@dataclass
class Finding:
    operation: str
    check: str
    code: str
    title: str
    message: str
    curl: str
    status: int | None
    body: str
    phase: str


def _phase(case: schemathesis.Case) -> str:
    meta = getattr(case, "meta", None)
    return meta.phase.name.value if meta is not None else "?"


def _curl(case: schemathesis.Case, response: Any = None) -> str:
    """The reproduction, credentials filtered (schemathesis's sanitization)."""
    headers = dict(response.request.headers) if response is not None else None
    return case.as_curl_command(headers=headers).split("\n\n")[0]


def _app_frame(exc: BaseException) -> str:
    """Where the exception left this repository's code (the innermost frame in it)."""
    root = str(Path(__file__).resolve().parents[1])
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith(root)
        and "/.venv/" not in f.filename
        and "/tests/" not in f.filename
    ]
    return f"{Path(frames[-1].filename).relative_to(root)}:{frames[-1].lineno}" if frames else "?"


@dataclass
class Findings:
    """Every distinct failure of one target's run, with the shortest reproduction seen.

    Distinct as schemathesis counts them (failure class, operation and the failure's own
    key, e.g. the undocumented status code), per check; an unhandled exception is distinct
    by its type and the place in the app it was raised. Nothing stops at the first failure,
    so one finding cannot hide another on the same operation.
    """

    target: Target
    found: dict[tuple, Finding] = field(default_factory=dict)
    #: Responses each check looked at, and cases sent per phase (for the report).
    checked: Counter[str] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)

    def _keep(self, key: tuple, finding: Finding) -> None:
        kept = self.found.get(key)
        if kept is None or len(finding.curl) < len(kept.curl):
            self.found[key] = finding

    def after_validate(self, context: Any, case: Any, response: Any, results: list) -> None:
        """schemathesis's `after_validate` hook: the outcome of every check on a response."""
        self.phases[_phase(case)] += 1
        for result in results:
            self.checked[result.name] += 1
            failure: Failure | None = result.failure
            if failure is None:
                continue
            operation = failure.operation or case.operation.label
            unique = getattr(failure, "_unique_key", "")
            key = (operation, result.name, type(failure).__name__, unique)
            self._keep(
                key,
                Finding(
                    operation=operation,
                    check=result.name,
                    code=failure.code,
                    title=failure.title,
                    message=failure.message.strip(),
                    curl=_curl(case, response),
                    status=response.status_code,
                    body=response.text[:400],
                    phase=_phase(case),
                ),
            )

    def crashed(self, case: schemathesis.Case, exc: BaseException) -> None:
        """The app raised instead of answering (a 500 that reached the ASGI server); an
        exception that never went through the app's code is the harness's, not a finding
        about the API."""
        where = _app_frame(exc)
        if where == "?":
            self.errored(case.operation.label, exc)
            return
        key = (case.operation.label, "not_a_server_error", type(exc).__name__, where)
        self._keep(
            key,
            Finding(
                operation=case.operation.label,
                check="not_a_server_error",
                code="ST101",
                title=f"Unhandled {type(exc).__name__} (the server answers 500)",
                message=f"{type(exc).__name__}: {str(exc)[:300]}\nraised at {where}",
                curl=_curl(case),
                status=500,
                body="",
                phase=_phase(case),
            ),
        )

    def errored(self, label: str, exc: BaseException) -> None:
        """Not an answer of the API: e.g. an operation whose schema could not be turned into
        cases, or an error of schemathesis or of this harness. Reported all the same."""
        key = (label, "harness", type(exc).__name__, str(exc)[:200])
        self.found[key] = Finding(
            operation=label,
            check="(run error)",
            code="-",
            title=type(exc).__name__,
            message=str(exc)[:1000],
            curl="",
            status=None,
            body="",
            phase="-",
        )

    def validate(self, case: schemathesis.Case, checks: list[CheckFunction]) -> None:
        """Send the case and run every check on the reply; failures are kept, not raised."""
        try:
            case.call_and_validate(additional_checks=checks)
        except FailureGroup:
            pass  # kept by `after_validate`
        except Exception as exc:
            self.crashed(case, exc)

    def fail_if_any(self) -> None:
        if self.found:
            pytest.fail(self.report(), pytrace=False)

    def report(self) -> str:
        lines = [
            f"{len(self.found)} distinct findings for {self.target.id}.",
            f"Responses checked per phase: {dict(sorted(self.phases.items()))}",
            f"Checks run (responses each): {dict(sorted(self.checked.items()))}",
        ]
        ordered = sorted(self.found.values(), key=lambda f: (f.operation, f.check, f.code))
        for n, f in enumerate(ordered, 1):
            lines.append(f"\n[{n}] {f.operation} | {f.check} | {f.code} {f.title} ({f.phase})")
            lines.extend(f"    {line}" for line in f.message.splitlines()[:8])
            if f.status is not None:
                lines.append(f"    response: {f.status} {f.body}")
            if f.curl:
                lines.append(f"    reproduce: {f.curl}")
        return "\n".join(lines)


# A target's run -------------------------------------------------------------------------


@dataclass
class FuzzRun:
    """One target's app, user, credentials, schema (with its auth provider and hooks) and
    findings."""

    target: Target
    settings: RequestSettings | ResponseSettings
    credentials: Credentials
    schema: schemathesis.BaseSchema
    findings: Findings
    extra_checks: list[CheckFunction]
    urls: dict[str, str]

    def reset(self) -> None:
        """Back to where a run starts: empty databases, Redis keys and transfer directory,
        and a new user of the target's role (its API key is made when first needed)."""
        empty_databases(self.urls)
        clear_redis()
        shutil.rmtree(self.settings.transfer_dir, ignore_errors=True)
        make_transfer_dirs(self.settings)  # as `serve` does before it answers
        self.credentials.user_id = _seed_user(self.target, self.settings)
        self.credentials.api_key = None

    def operation_tests(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """One Hypothesis test per operation running its examples, coverage and fuzzing
        phases, each case through `Findings.validate`.

        These are the tests `schema.parametrize()` builds (`get_all_tests` is what its lazy
        form calls), run here one after the other inside one pytest test: a parametrized
        test stops an operation at its first failing case (Hypothesis then shrinks it), so
        one finding would hide the others of the same operation. (The lazy form,
        `schemathesis.pytest.from_fixture`, also fails on pytest 9.2: it reads
        `node._nodeid`, which pytest's nodes no longer have.)"""

        def check_case(case: schemathesis.Case) -> None:
            self.findings.validate(case, self.extra_checks)

        for result in get_all_tests(
            schema=self.schema, test_func=check_case, settings=None, given_kwargs=None
        ):
            if isinstance(result, Ok):
                operation, test = result.ok()
                yield operation.label, test
            else:
                error = result.err()
                yield error.label or "?", _raiser(error)

    def learn_links_from_location(self) -> int:
        """Show schemathesis's link inference what the API answers to a valid submission
        (its `Location` header and the URLs in its body), as the CLI does between its phases,
        so the state machine chains `POST /api/v1/requests` to the routes of the request it
        created. Returns the number of links added."""
        operation = self.schema["/api/v1/requests"]["POST"]
        case = operation.Case(body=dict(VALID_SUBMISSION), media_type="application/json")
        name, value = self.credentials.header()
        case.headers = {name: value}
        response = case.call()
        assert response.status_code == 202, response.text
        observations = Observations()
        observations.location_headers[operation] = [
            LocationHeaderEntry(status_code=202, value=response.headers["location"][0])
        ]
        observations.body_urls[operation] = [
            BodyUrlEntry(status_code=202, pointer=f"/links/{name}", value=url)
            for name, url in response.json()["links"].items()
        ]
        return self.schema.apply_stateful_inference(observations).inferred

    def state_machine(self) -> type:
        """schemathesis's state machine over the schema, keeping every finding; each
        scenario starts from a reset state.

        On the request API it first learns the links of `POST /api/v1/requests`, and every
        other positive submission it sends is replaced by a valid one: the schema cannot say
        which profile types exist nor describe the query language (`query` is any object),
        so generated submissions are all refused and nothing would follow those links.
        """
        run, findings, extra = self, self.findings, self.extra_checks
        submit = "POST /api/v1/requests"
        if self.target.network == "request":
            assert self.learn_links_from_location() > 0

        class Machine(self.schema.as_state_machine()):
            def setup(self) -> None:
                # Every scenario starts from the same state: Hypothesis requires that the
                # same choices meet the same answers (rules depend on what was answered).
                run.reset()
                self.submissions = itertools.count()

            def before_call(self, case: schemathesis.Case) -> None:
                positive = case.meta is not None and case.meta.generation.mode.is_positive
                if case.operation.label == submit and positive and next(self.submissions) % 2 == 0:
                    case.body = dict(VALID_SUBMISSION)

            def step(self, input: Any) -> Any:
                try:
                    return super().step(input)
                except Exception as exc:  # the app raised instead of answering
                    findings.crashed(input.case, exc)
                    return None

            def validate_response(self, response, case, additional_checks=None, **kwargs):
                checks = [*(additional_checks or []), *extra]
                with suppress(FailureGroup):  # every failure is kept by `after_validate`
                    super().validate_response(response, case, additional_checks=checks, **kwargs)

        return Machine


def _raiser(exc: BaseException) -> Callable[[], None]:
    def run() -> None:
        raise exc

    return run


def _load_schema(app: Any, target: Target, credentials: Credentials, findings: Findings):
    """The app's schema with one auth provider: the target's scheme on every operation that
    declares security, nothing on public ones. No caching (`refresh_interval=None`): `get`
    runs for every case."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=fuzz_config(target))

    class FuzzAuth:
        def get(self, case: Any, context: Any) -> tuple[str, str] | None:
            return credentials.header() if declares_security(context.operation) else None

        def set(self, case: Any, data: tuple[str, str], context: Any) -> None:
            name, value = data
            case.headers = dict(case.headers or {})
            case.headers[name] = value

    schema.auth(refresh_interval=None)(FuzzAuth)
    schema.hooks.register_hook_with_name(findings.after_validate, "after_validate")
    schema.hooks.register_hook_with_name(credentials.after_call, "after_call")
    return schema


def _seed_user(target: Target, settings: RequestSettings | ResponseSettings) -> str:
    """The target's user (on the request network with a profile type whose limits no fuzz
    run can reach; a fuzzed admin call may still lower them, and a 429 is then the
    documented answer)."""
    name = f"fuzz-{target.role}-{uuid.uuid4().hex[:8]}"
    if target.network == "response":
        return rs.add_user(settings.database_url, name, role=target.role)
    seed = rq.Seed(settings.database_url)
    seed.profile_type(rate_limits={"minute": MAX_LIMIT, "hour": MAX_LIMIT, "day": MAX_LIMIT})
    return seed.user(name, role=target.role)


def start(target: Target, urls: dict[str, str], base: Path, keys: dict[str, Path]) -> FuzzRun:
    """The target's app, schema and user, from empty databases, Redis keys and transfer
    directory."""
    if target.network == "request":
        settings = rq.make_settings(urls["request"], **_common(base, keys, "request"))
        app = request_app(settings)
    else:
        settings = rs.make_settings(urls["response"], **_common(base, keys, "response"))
        app = response_app(settings)
    credentials = Credentials(target, settings, user_id="")
    findings = Findings(target)
    schema = _load_schema(app, target, credentials, findings)
    extra = [bearer_auth_enforced()] if target.scheme == BEARER else []
    run = FuzzRun(target, settings, credentials, schema, findings, extra, urls)
    run.reset()
    return run
