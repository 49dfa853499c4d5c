"""The CSR API end to end: a real TLS grpc.aio server on 127.0.0.1 and the agent's client.

Uses the wall clock (TLS handshakes check validity against real time)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from ca_testkit import ALICE, Keys
from cryptography import x509

from meshward.agent import ca_client
from meshward.agent import keys as agent_keys
from meshward.ca import csr_api, validator
from meshward.ca.authority import CertificateAuthority, IssuedCertificate
from meshward.ca.credentials import WorkloadTokens
from meshward.errors import AuthenticationError, CertificateError
from meshward.identity import SpiffeId
from meshward.server.ca_service import serve_ca

HOUR = timedelta(hours=1)
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def ca(tmp_path: Path, keys: Keys) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(
        tmp_path / "ca",
        trust_domain="cluster.local",
        now=_now(),
        key=keys.root,
        token_key=keys.token,
    )


def _with_server(ca: CertificateAuthority, body: Callable[[str], Awaitable[T]]) -> T:
    async def run() -> T:
        server, port = await serve_ca(ca, "127.0.0.1", 0, now_fn=_now)
        try:
            return await body(f"127.0.0.1:{port}")
        finally:
            await server.stop(None)

    return asyncio.run(run())


def test_issues_the_token_identity_not_the_csr_hint(ca: CertificateAuthority, keys: Keys) -> None:
    token = ca.tokens.issue_workload_token(ALICE, node="node-1", now=_now(), ttl=HOUR)

    async def body(target: str) -> IssuedCertificate:
        return await ca_client.request_certificate(
            target,
            root_pem=ca.trust_bundle_pem,
            token=token,
            key=keys.leaf,
            ttl_seconds=3600,
            identity_hint="spiffe://cluster.local/ns/kube-system/sa/admin",
        )

    issued = _with_server(ca, body)
    leaf = x509.load_pem_x509_certificate(issued.chain_pem)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ALICE.uri)])
    )
    assert issued.root_pem == ca.trust_bundle_pem
    assert issued.not_after == leaf.not_valid_after_utc
    validator.validate_svid(
        issued.chain_pem, trust_bundle_pem=ca.trust_bundle_pem, expected=ALICE, now=_now()
    )


def _raw_call(
    metadata: tuple[tuple[str, str], ...], request: bytes, root_pem: bytes
) -> Callable[[str], Awaitable[tuple[grpc.StatusCode, str]]]:
    async def body(target: str) -> tuple[grpc.StatusCode, str]:
        credentials = grpc.ssl_channel_credentials(root_certificates=root_pem)
        options = (("grpc.ssl_target_name_override", "meshward-ca"),)
        async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
            call = channel.unary_unary(csr_api.FULL_METHOD, None, None)  # raw bytes both ways
            try:
                await call(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as error:
                return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    return body


def _request(keys: Keys, ttl: int = 3600) -> bytes:
    return csr_api.encode_request(csr_api.CertificateRequest(agent_keys.csr_for(keys.leaf), ttl))


def _case_metadata(ca: CertificateAuthority, keys: Keys, case: str) -> tuple[tuple[str, str], ...]:
    forged = WorkloadTokens(keys.other_token).issue_workload_token(
        ALICE, node="n", now=_now(), ttl=HOUR
    )
    good = ca.tokens.issue_workload_token(ALICE, node="n", now=_now(), ttl=HOUR)
    return {
        "no token": (),
        "not bearer": (("authorization", f"Basic {good}"),),
        "forged token": (("authorization", f"Bearer {forged}"),),
        "good token": (("authorization", f"Bearer {good}"),),
    }[case]


@pytest.mark.parametrize(
    ("case", "code", "detail"),
    [
        (("no token", "good"), grpc.StatusCode.UNAUTHENTICATED, "no authorization metadata"),
        (("not bearer", "good"), grpc.StatusCode.UNAUTHENTICATED, "authorization metadata is not"),
        (("forged token", "good"), grpc.StatusCode.UNAUTHENTICATED, "token rejected: Signature"),
        (("good token", "good"), grpc.StatusCode.OK, ""),
        (("good token", "ttl too long"), grpc.StatusCode.INVALID_ARGUMENT, "TTL "),
        (("good token", "not json"), grpc.StatusCode.INVALID_ARGUMENT, "message is not JSON"),
        (("good token", "bad csr"), grpc.StatusCode.INVALID_ARGUMENT, "malformed CSR"),
    ],
)
def test_status_codes(
    ca: CertificateAuthority,
    keys: Keys,
    case: tuple[str, str],
    code: grpc.StatusCode,
    detail: str,
) -> None:
    token_kind, request_kind = case
    request = {
        "good": _request(keys),
        "ttl too long": _request(keys, ttl=91 * 24 * 3600),
        "not json": b"\x00{",
        "bad csr": b'{"csr": "nope", "ttl_seconds": 3600}',
    }[request_kind]
    got_code, got_detail = _with_server(
        ca, _raw_call(_case_metadata(ca, keys, token_kind), request, ca.trust_bundle_pem)
    )
    assert got_code == code
    assert got_detail.startswith(detail)


@pytest.mark.parametrize(
    ("token_kind", "error"),
    [("forged", AuthenticationError), ("expired", AuthenticationError)],
)
def test_client_maps_refusals_to_errors(
    ca: CertificateAuthority, keys: Keys, token_kind: str, error: type[CertificateError]
) -> None:
    token = {
        "forged": WorkloadTokens(keys.other_token).issue_workload_token(
            ALICE, node="n", now=_now(), ttl=HOUR
        ),
        "expired": ca.tokens.issue_workload_token(ALICE, node="n", now=_now() - 2 * HOUR, ttl=HOUR),
    }[token_kind]

    async def body(target: str) -> IssuedCertificate:
        return await ca_client.request_certificate(
            target, root_pem=ca.trust_bundle_pem, token=token, key=keys.leaf, ttl_seconds=3600
        )

    with pytest.raises(error, match=r"^CA refused the token: "):
        _with_server(ca, body)


def test_client_refuses_a_server_outside_the_trust_bundle(
    ca: CertificateAuthority, keys: Keys, tmp_path: Path
) -> None:
    stranger = CertificateAuthority.load_or_create(
        tmp_path / "other", trust_domain="cluster.local", now=_now(), key=keys.other_root
    )
    token = ca.tokens.issue_workload_token(ALICE, node="n", now=_now(), ttl=HOUR)

    async def body(target: str) -> IssuedCertificate:
        return await ca_client.request_certificate(
            target,
            root_pem=stranger.trust_bundle_pem,
            token=token,
            key=keys.leaf,
            ttl_seconds=3600,
            timeout=3,
        )

    with pytest.raises(CertificateError, match=r"^CA call failed: UNAVAILABLE"):
        _with_server(ca, body)


def test_serving_certificate_renewed_at_half_life(ca: CertificateAuthority) -> None:
    from meshward.server import ca_service

    start = _now().replace(microsecond=0)  # certificates carry whole seconds
    clock = [start]
    identity = SpiffeId("cluster.local", "meshward-system", "meshward-control-plane")
    serving = ca_service._ServingCertificate(ca, identity, (), lambda: clock[0])
    first = serving._issued
    assert serving.fetch() is None
    clock[0] = start + ca_service.SERVING_TTL / 2 - timedelta(seconds=61)
    assert serving.fetch() is None
    clock[0] = start + ca_service.SERVING_TTL / 2
    assert isinstance(serving.fetch(), grpc.ServerCertificateConfiguration)
    assert serving._issued.not_before == clock[0] - timedelta(minutes=1)
    assert serving._issued.chain_pem != first.chain_pem
