"""``manage.py serve`` for real: gunicorn, a Celery worker and beat start, answer, and all stop.

Runs on the embedded default (no DATABASE_URL, no CELERY_BROKER_URL) in its own var
folder, so it needs no server: the worker and beat share kombu's filesystem transport.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

pytestmark = pytest.mark.e2e

START_TIMEOUT = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every live process whose parent chain reaches ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class _Output:
    """Collects the supervisor's merged output on a thread; waits for lines by pattern."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self._lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout}s; output:\n{self.text()[-4000:]}")


@pytest.fixture
def served(tmp_path):
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG"}
        and not key.startswith(("FEDGOV_", "PYTEST", "DJANGO_SETTINGS"))
    }
    # Beat sends the checkpoint task every second, so the worker's log proves the chain
    # beat → filesystem broker → worker within the test.
    env.update(FEDGOV_VAR_DIR=str(tmp_path / "var"), FEDGOV_CHECKPOINT_INTERVAL="1")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = _Output(proc.stdout)
    try:
        yield proc, output, f"http://127.0.0.1:{port}", tmp_path / "var"
    finally:
        if proc.poll() is None:
            # Only if the test failed before its own SIGINT: stop the whole session.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_serve_starts_web_worker_and_beat_and_sigint_stops_every_process(served):
    proc, output, base, var_dir = served
    _wait_http(f"{base}/admin/login/", START_TIMEOUT)
    output.wait_for(r"celery@\S+ ready", START_TIMEOUT)
    output.wait_for(r"beat: Starting", START_TIMEOUT)
    # A task beat sent went through the filesystem broker and the worker ran it.
    output.wait_for(r"Task audit\.checkpoint_if_new\[[0-9a-f-]+\] succeeded", START_TIMEOUT)
    assert (var_dir / "broker" / "queue").is_dir()
    assert (var_dir / "fedgov.sqlite3").is_file(), "the embedded default is SQLite in var/"

    # DEBUG is off (the default), yet the admin's stylesheet is served (whitenoise).
    browser = requests.Session()
    css = browser.get(f"{base}/static/admin/css/base.css", timeout=10)
    assert css.status_code == 200, css.status_code
    assert css.headers["Content-Type"].startswith("text/css") and "body" in css.text

    # Each printed demo password logs in: operator reaches the admin index, with a code
    # from the TOTP secret printed beside the password (an approver's second factor).
    found = output.wait_for(r"Operator\s+demo-operator\s+(\S+)\n\s+TOTP secret (\S+)", 5)
    password, secret = found.group(1), found.group(2)
    from django_otp.oath import TOTP

    code = f"{TOTP(base64.b32decode(secret + '=' * (-len(secret) % 8))).token():06d}"
    page = browser.get(f"{base}/admin/login/", timeout=10).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    landed = browser.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": token,
            "username": "demo-operator",
            "password": password,
            "otp_token": code,
        },
        headers={"Referer": f"{base}/admin/"},
        timeout=10,
    )
    assert landed.url.endswith("/admin/"), landed.url
    assert "Log out" in landed.text and "demo-operator" in landed.text

    processes = _descendants(proc.pid)
    commands = {
        pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for pid in processes
        if _alive(pid)
    }
    assert any("gunicorn" in cmd for cmd in commands.values()), commands
    assert any(" worker" in cmd for cmd in commands.values()), commands
    assert any(" beat" in cmd for cmd in commands.values()), commands

    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends the supervisor
    proc.wait(timeout=30)
    assert "SIGINT received" in output.text()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in processes):
        time.sleep(0.2)
    orphans = {pid: commands.get(pid) for pid in processes if _alive(pid)}
    assert not orphans, f"left running after SIGINT: {orphans}"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/admin/login/", timeout=2)
