#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test storehost.
# Called by .ci/run and by the README; safe to run again.
set -euo pipefail

# The WebAssembly target the plugins are built for (rustup's own download;
# RUSTUP_AUTO_INSTALL=0 machines do not fetch it by themselves).
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy

# A real PostgreSQL server for the tests (the harness runs initdb/pg_ctl
# itself, as the postgres user, on a free loopback port).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
fi
