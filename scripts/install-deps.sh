#!/usr/bin/env bash
# Installs what the build and tests need on a fresh Debian 12 machine, for PostgreSQL
# major PG (15 by default; scripts/install-pg.sh installs it). Idempotent: each step
# checks whether its work is already done.
#   scripts/install-deps.sh [15|16|17|18]
set -euo pipefail

PG=${1:-15}
PGRX_VERSION=0.18.0
APT_PACKAGES=(clang libclang-dev pkg-config sudo libssl-dev openssl curl ca-certificates
              python3-venv)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
  echo "install-deps: cargo install cargo-pgrx $PGRX_VERSION"
  cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

"$(dirname "$0")/install-pg.sh" "$PG" >/dev/null

# cargo pgrx init writes its config anew: name every version installed so far, so that
# building for one major does not forget another.
if ! grep -qs "^pg$PG = " "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
  args=()
  for config in /opt/sequin-sf-pg/*/bin/pg_config; do
    args+=("--pg$(basename "$(dirname "$(dirname "$config")")")" "$config")
  done
  echo "install-deps: cargo pgrx init ${args[*]}"
  cargo pgrx init "${args[@]}"
fi

# Python client used by the conformance tests (an independent Salesforce client).
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# installed again whenever tests/requirements.txt changes (a stamp of its hash)
STAMP="$VENV/.requirements.sha256"
WANT=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "install-deps: pip install -r tests/requirements.txt"
  "$VENV/bin/pip" install -q -r tests/requirements.txt
  echo "$WANT" > "$STAMP"
fi
