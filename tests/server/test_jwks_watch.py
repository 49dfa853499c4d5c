"""The unknown-kid trigger: new jwt_authn "no key for kid" denials in sidecar logs, counted
once each, whole lines only, from where the last poll stopped; a replaced file is re-read."""

from __future__ import annotations

from pathlib import Path

from meshward.server.jwks_watch import UnknownKidWatch
from meshward.xds.jwt_authn import UNKNOWN_KID_DETAIL

DENIAL = f'{{"code":401,"details":"jwt_authn_access_denied{{{UNKNOWN_KID_DETAIL}}}"}}\n'
OTHER = '{"code":401,"details":"jwt_authn_access_denied{Jwt_is_expired}"}\n'


def test_counts_new_complete_lines_once(tmp_path: Path) -> None:
    log = tmp_path / "core.web-0.envoy.log"
    other = tmp_path / "core.api-0.envoy.log"
    (tmp_path / "core.web-0.log").write_text(DENIAL)  # an app log: not a sidecar's
    watch = UnknownKidWatch(tmp_path)
    log.write_text(DENIAL + OTHER + DENIAL[:20])  # the last line is still being written
    other.write_text(DENIAL)
    assert watch.poll() == 2
    assert watch.poll() == 0
    with log.open("a") as out:
        out.write(DENIAL[20:] + OTHER)
    assert watch.poll() == 1
    log.write_text(DENIAL)  # replaced by a shorter file: read from its start
    assert watch.poll() == 1


def test_no_logs_yet(tmp_path: Path) -> None:
    assert UnknownKidWatch(tmp_path / "missing").poll() == 0
