"""Half-open connections: they are closed after ``service.header_timeout_s``; the service keeps answering."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hostile import address, serving
from tests.support.serving import Server

pytestmark = [pytest.mark.e2e, pytest.mark.model]

HEADER_TIMEOUT_S = 2.0
HALF_OPEN = 400


@pytest.fixture(scope="module")
def server(example_index_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(example_index_source, tmp_path_factory, {"header_timeout_s": str(HEADER_TIMEOUT_S)}) as running:
        yield running


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True if the server closes ``sock`` within ``within_s`` (EOF or reset), False if it stays open."""
    sock.settimeout(max(within_s, 0.01))
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_half_open_connections_do_not_stall_healthz_and_are_closed(server: Server) -> None:
    sockets: list[socket.socket] = []
    try:
        for n in range(HALF_OPEN):
            sock = socket.create_connection(address(server), timeout=5)
            if n % 2:  # half of them start a request head and never finish it; the rest send nothing
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        opened = time.monotonic()
        started = time.perf_counter()
        response = httpx.get(server.base_url + "/healthz", timeout=5)
        took = time.perf_counter() - started
        assert response.status_code == 200
        assert took < 1.0, f"/healthz took {took:.2f} s beside {HALF_OPEN} half-open connections"
        # Still open well before the deadline: the timer closes them, not a reflex on connect.
        assert not closed_by_server(sockets[0], 0.05)
        deadline = opened + HEADER_TIMEOUT_S + 5.0
        still_open = [n for n, sock in enumerate(sockets) if not closed_by_server(sock, deadline - time.monotonic())]
        assert still_open == [], f"{len(still_open)} of {HALF_OPEN} half-open connections were not closed"
    finally:
        for sock in sockets:
            sock.close()
    assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200


def test_a_trickled_request_head_is_closed_at_the_deadline(server: Server) -> None:
    """Slowloris: a byte of headers every 0.3 s never resets the deadline."""
    with socket.create_connection(address(server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT_S + 5.0:
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_by_server(sock, 0.3):
                closed = True
                break
        assert closed, "a connection trickling its headers stayed open past the header timeout"
        assert time.monotonic() - started >= HEADER_TIMEOUT_S - 0.5


def test_a_kept_alive_connection_still_serves_its_next_request(server: Server) -> None:
    """The deadline covers a request head, not the life of a connection that keeps answering."""
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(HEADER_TIMEOUT_S / 2 + 0.2)  # twice past the deadline in all, within keep-alive (5 s)
        assert client.get("/healthz").status_code == 200


def test_a_client_that_hangs_up_mid_body_leaves_no_error_in_the_log(server: Server) -> None:
    """Slow-body attackers drop their connections by the hundred: each was a logged 500 with a traceback."""
    for _ in range(3):
        sock = socket.create_connection(address(server), timeout=5)
        sock.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"query": "bu'
        )
        time.sleep(0.2)
        sock.close()
    time.sleep(0.5)
    assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200
    log = server.output()
    assert "client disconnected while sending POST /v1/search" in log
    assert "Traceback" not in log and "unhandled error" not in log


def test_a_trickled_body_is_cut_off_and_a_normal_body_is_not(server: Server) -> None:
    """A body must arrive within header_timeout_s plus its length at 64 KiB/s; one byte every 0.3 s does not."""
    sock = socket.create_connection(address(server), timeout=5)
    try:
        sock.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"query": "'
        )
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT_S + 6:
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            if closed_by_server(sock, 0.3):
                closed = True
                break
        assert closed, "a body trickled a byte at a time kept its connection"
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3
    finally:
        sock.close()
    response = httpx.post(server.base_url + "/v1/search", json={"query": "бюджет", "k": 3}, timeout=30)
    assert response.status_code == 200
