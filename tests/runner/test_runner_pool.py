"""`runner.network.unused_pool`: a /16 with a listening admin port is in use; one whose admin
connections linger in TIME_WAIT after its mesh stopped is free again (observed: four pools
run back to back left every pool "in use" for a minute). Uses this checkout's pools
127.211-214 (tests/e2e/test_e2e_egress_gateway.py's), each only for the test's duration."""

from __future__ import annotations

import socket

import pytest

from meshward.errors import StateError
from meshward.runner.network import unused_pool

ADMIN = 15000


def _listener(second: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Envoy's admin listener
    server.bind((f"127.{second}.0.2", ADMIN))
    server.listen()
    return server


def _free_second() -> int:
    return int(unused_pool(range(211, 215)).split(".")[1])


def test_a_listening_admin_port_makes_the_pool_used() -> None:
    second = _free_second()
    in_use = rf"every pool 127\.\{{{second}\}}\.0\.0/16 is in use"
    with _listener(second), pytest.raises(StateError, match=in_use):
        unused_pool([second])


def test_time_wait_left_by_a_stopped_mesh_does_not() -> None:
    second = _free_second()
    with _listener(second) as server:
        client = socket.create_connection((f"127.{second}.0.2", ADMIN))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its address:port goes to TIME_WAIT
        client.close()
    assert unused_pool([second]) == f"127.{second}.0.0/16"
