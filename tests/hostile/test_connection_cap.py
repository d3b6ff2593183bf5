"""The connection cap answers 503 problem+json beyond ``service.max_connections``; running out of file
descriptors is logged as a few JSON lines, not a flood of plain tracebacks; the service recovers."""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import assert_problem
from tests.support.hostile import address, serving
from tests.support.serving import Server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

CAP = 20
HEADER_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def server(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = {"max_connections": str(CAP), "header_timeout_s": str(HEADER_TIMEOUT_S)}
    with serving(example_index_source, tmp_path_factory, settings) as running:
        yield running


def open_idle(server: Server, count: int) -> list[socket.socket]:
    return [socket.create_connection(address(server), timeout=5) for _ in range(count)]


def test_beyond_the_cap_a_request_gets_503_problem_json(server: Server) -> None:
    idle = open_idle(server, CAP + 5)
    try:
        time.sleep(0.2)  # let the server accept them all
        response = httpx.get(server.base_url + "/healthz", timeout=5)
        body = assert_problem(response, 503, "too-many-connections")
        assert str(CAP) in body["detail"]
        assert response.headers["retry-after"] == "1"
        assert response.headers["connection"] == "close"
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200


def test_the_header_timeout_frees_the_cap_without_the_attacker_letting_go(server: Server) -> None:
    idle = open_idle(server, CAP + 5)
    try:
        time.sleep(HEADER_TIMEOUT_S + 1.0)
        assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_running_out_of_file_descriptors_logs_a_few_json_lines(server: Server) -> None:
    pid = server.process.pid
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    log_start = len(server.output())
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (_open_files(pid) + 5, before[1]))
    sockets: list[socket.socket] = []
    try:
        for _ in range(60):  # the kernel completes the handshakes; the server's accept() fails: EMFILE
            sockets.append(socket.create_connection(address(server), timeout=5))
        time.sleep(HEADER_TIMEOUT_S + 3.0)  # accept retries once a second, and the timeout frees descriptors
    finally:
        for sock in sockets:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(server.base_url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not recover after the descriptors came back"
        time.sleep(0.2)
    lines = [line for line in server.output()[log_start:].splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object: no plain tracebacks
    exhausted = [e for e in entries if "out of system resource" in e["message"] or "open files" in e["message"]]
    assert exhausted, "the exhaustion was not logged at all"
    assert len(exhausted) <= 6, f"{len(exhausted)} lines for one exhaustion: not rate-limited"
