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

# Debian packages: a real PostgreSQL server for the tests (the harness runs
# initdb/pg_ctl itself, as the postgres user, on a free loopback port);
# git, whose `git http-backend` the Git test server runs behind basic auth;
# OpenSSL headers and pkg-config, which git2's HTTPS transport builds
# against; and rclone, which the object-storage benchmark compares against.
apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  fi
}
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
[ -x "$(git --exec-path 2>/dev/null)/git-http-backend" ] || missing+=(git)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev pkg-config)
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

# A real S3-compatible server for the tests: s3s-fs from crates.io (the
# harness starts it on a free loopback port with SigV4 keys). 0.14.1 is the
# newest that builds with the pinned stable toolchain.
S3S_FS_VERSION=0.14.1
if ! s3s-fs --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
fi

# Azure Blob Storage for the tests: Azurite's blob service (npm), started
# by the harness on a free loopback port with its own account and key.
AZURITE_VERSION=3.37.0
# (`azurite-blob --version` reports an older number than the package's.)
if ! npm ls -g --depth=0 azurite 2>/dev/null | grep -q "azurite@$AZURITE_VERSION"; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  if [ "$(id -u)" = 0 ]; then
    npm install -g --no-fund --no-audit "azurite@$AZURITE_VERSION"
  else
    sudo npm install -g --no-fund --no-audit "azurite@$AZURITE_VERSION"
  fi
fi
