"""The request-body deadline of ``poshuk serve``'s connections (service.connections)."""

from __future__ import annotations

from service.connections import MIN_BODY_BYTES_PER_S, body_deadline_s


def test_a_body_gets_the_header_timeout_plus_its_length_at_the_minimum_rate() -> None:
    assert body_deadline_s(10.0, [(b"content-length", b"100")]) == 10.0 + 100 / MIN_BODY_BYTES_PER_S
    eight_mib = 8 * 1024 * 1024
    assert body_deadline_s(10.0, [(b"content-length", str(eight_mib).encode())]) == 10.0 + 128.0


def test_a_body_without_a_usable_length_gets_the_largest_writes_allowance() -> None:
    largest = 10.0 + 8 * 1024 * 1024 / MIN_BODY_BYTES_PER_S
    assert body_deadline_s(10.0, [(b"transfer-encoding", b"chunked")]) == largest
    assert body_deadline_s(10.0, [(b"content-length", b"-5")]) == largest
