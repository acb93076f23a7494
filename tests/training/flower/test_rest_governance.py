"""fedgov_flower's REST client against a real HTTP peer on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fedgov_flower.governance import GovernanceError, RestGovernance, RoundRefusal


def _serving(status: int, body: dict):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def peer():
    servers = []

    def start(status: int, body: dict) -> str:
        servers.append(_serving(status, body))
        return f"http://127.0.0.1:{servers[-1].server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_round_not_yet_placed_is_a_refusal_not_a_failure(peer):
    # The ticket endpoint's 409 for an approved round whose placement is not verified.
    url = peer(409, {"allowed": False, "run_id": 1, "round": 1, "state": "approved",
                     "reason": "a ticket is issued only once placement is verified"})  # fmt: skip
    answer = RestGovernance(url, "token").request_round(run_id=1, round_no=1)
    assert isinstance(answer, RoundRefusal)
    assert answer.state == "approved" and "placement is verified" in answer.reason
    assert answer.on_refusal == "skip"


@pytest.mark.parametrize("status", [400, 403, 500])
def test_other_errors_stay_failures(peer, status):
    url = peer(status, {"detail": "no"})
    with pytest.raises(GovernanceError, match=str(status)):
        RestGovernance(url, "token").request_round(run_id=1, round_no=1)
