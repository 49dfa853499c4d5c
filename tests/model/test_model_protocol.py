"""Protocol inference, Istio's rule: appProtocol, else `<protocol>[-suffix]` port name, else TCP."""

from __future__ import annotations

import pytest

from meshward.model import ir, protocol

# (port name, appProtocol, expected)
CASES: list[tuple[str, str, ir.Protocol]] = [
    ("http", "", "HTTP"),
    ("http-web", "", "HTTP"),
    ("HTTP-Web", "", "HTTP"),
    ("http2", "", "HTTP2"),
    ("http2-api", "", "HTTP2"),
    ("grpc", "", "GRPC"),
    ("grpc-api", "", "GRPC"),
    ("grpc-web", "", "HTTP2"),
    ("grpc-web-ui", "", "HTTP2"),
    ("tcp", "", "TCP"),
    ("tcp-db", "", "TCP"),
    ("https", "", "TCP"),
    ("tls-x", "", "TCP"),
    ("redis", "", "TCP"),
    ("mongo", "", "TCP"),
    ("mysql", "", "TCP"),
    ("web", "", "TCP"),  # unknown prefix: Istio sniffs, meshward treats as TCP
    ("httpx", "", "TCP"),  # prefix must be the whole word before '-'
    ("", "", "TCP"),
    ("tcp", "http", "HTTP"),  # appProtocol wins over the name
    ("http", "tcp", "TCP"),
    ("web", "grpc", "GRPC"),
    ("web", "http2", "HTTP2"),
    ("web", "grpc-web", "HTTP2"),
    ("web", "https", "TCP"),
    ("web", "redis", "TCP"),
    ("web", "kubernetes.io/h2c", "HTTP2"),
    ("web", "kubernetes.io/ws", "HTTP"),
    ("web", "kubernetes.io/wss", "TCP"),
    ("http", "custom", "TCP"),  # a set appProtocol replaces the name: no fallback
]


@pytest.mark.parametrize(("name", "app_protocol", "expected"), CASES)
def test_infer(name: str, app_protocol: str, expected: ir.Protocol) -> None:
    assert protocol.infer(name, app_protocol) == expected
