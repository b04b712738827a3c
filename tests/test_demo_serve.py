"""`ferry demo --serve`, run as a user runs it: the cycle, then both networks' APIs and
admin panels on the ports asked for, a panel login that works over HTTP (the demo's cookie
is not `Secure`), and a clean stop on SIGINT."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.e2e.e2e_support import Abort, free_port, wait_until
from tests.test_cli import FERRY, ROOT, clean_env

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PANEL = re.compile(r"(request|response)\s+network .*panel (http://127\.0\.0\.1:\d+/admin)")
LOGIN = re.compile(r"panel login\s+(\S+) / (\S+)")


@dataclass
class Demo:
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def ready(self) -> dict[str, str] | None:
        panels = dict(m.groups() for m in PANEL.finditer(self.output))
        login = LOGIN.search(self.output)
        if self.process.poll() is not None:
            raise Abort(f"ferry demo --serve exited {self.process.returncode}:\n{self.output}")
        if login is None or len(panels) < 2:
            return None
        return panels | {"username": login.group(1), "password": login.group(2)}


def start(*args: str, workdir) -> Demo:
    process = subprocess.Popen(
        [FERRY, "demo", "--serve", "--workdir", str(workdir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env({"PYTHONUNBUFFERED": "1"}),
        cwd=ROOT,
    )
    demo = Demo(process)
    threading.Thread(target=demo.read, daemon=True).start()
    return demo


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Demo, dict[str, str]]]:
    ports = {"request": free_port(), "response": free_port()}
    demo = start(
        "--request-port",
        str(ports["request"]),
        "--response-port",
        str(ports["response"]),
        workdir=tmp_path_factory.mktemp("demo"),
    )
    try:
        found = wait_until(
            demo.ready,
            timeout=180,
            what="ferry demo --serve to print its URLs",
            details=lambda: demo.output,
        )
        assert found["request"] == f"http://127.0.0.1:{ports['request']}/admin"
        assert found["response"] == f"http://127.0.0.1:{ports['response']}/admin"
        yield demo, found
    finally:
        if demo.process.poll() is None:
            demo.process.kill()
            demo.process.wait(30)


def sign_in(panel: str, username: str, password: str) -> httpx.Client:
    """A client signed in to the panel at `panel` through its login form."""
    client = httpx.Client(base_url=panel, timeout=30)
    form = client.get("/admin/login")
    assert form.status_code == 200, form.text
    token = CSRF.search(form.text)
    assert token, "no CSRF token on the login form"
    reply = client.post(
        "/admin/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
    )
    assert reply.status_code == 303, reply.text
    cookie = reply.headers["set-cookie"]
    assert re.match(r"ferry_panel_(request|response)=", cookie), cookie  # that network's
    assert "httponly" in cookie.lower()
    assert "secure" not in cookie.lower()  # the demo is plain HTTP on localhost
    return client


def check_panel(panel_url: str, found: dict[str, str]) -> None:
    base = panel_url.removesuffix("/admin")
    client = sign_in(base, found["username"], found["password"])
    try:
        page = client.get("/admin/dashboard")
        assert page.status_code == 200, page.text
        assert found["username"] in page.text
    finally:
        client.close()


def test_the_request_panel_takes_the_printed_login(served):
    demo, found = served
    assert "demo ok" in demo.output
    check_panel(found["request"], found)
    # the API beside it answers too
    health = httpx.get(found["request"].removesuffix("/admin") + "/health", timeout=30)
    assert health.status_code == 200, health.text


def test_the_response_panel_takes_the_printed_login(served):
    _, found = served
    check_panel(found["response"], found)


def test_sigint_stops_both_networks_cleanly(served):
    demo, found = served
    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=60) == 0, demo.output
    for panel in (found["request"], found["response"]):
        port = int(panel.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    wait_until(lambda: "stopped" in demo.output, timeout=10, what="the reader to finish")


def test_a_port_in_use_is_reported_before_the_cycle(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = start("--request-port", str(port), "--response-port", "0", workdir=tmp_path)
        assert demo.process.wait(timeout=60) == 1
    wait_until(lambda: "cannot serve" in demo.output, timeout=10, what="the refusal")
    assert "request network" in demo.output
    assert "demo ok" not in demo.output and "Setting up" not in demo.output
    assert not os.path.exists(tmp_path / "request.db")
