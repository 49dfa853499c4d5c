#!/usr/bin/env bash
# One idempotent set-up for `make demo` and `make test` on a fresh machine:
# Debian packages the demo, tests and benchmarks run (redis-server is the demo's database,
# nginx and wrk are benchmark peers, iproute2 and iptables the netns network mode), then
# .venv with meshward and its pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The netns network mode (root on Linux): ip (iproute2) and iptables-restore (iptables).
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need_apt+=(iproute2)
command -v iptables-restore >/dev/null 2>&1 || [ -x /usr/sbin/iptables-restore ] || need_apt+=(iptables)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=.venv/.installed
want="$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
echo "$want" > "$stamp"
echo "setup: .venv ready"
