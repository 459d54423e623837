#!/usr/bin/env bash
# Installs everything secondsite needs on a fresh Debian 12 machine with Node 20, and nothing twice:
# Debian packages (real NBD peers used by tests and benchmarks), npm packages, and the native addon.
# Safe to run again; each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."

# iproute2: `ip netns` isolates the networks of test-failover VMs; valgrind: the tracking-instructions benchmark
want_debs=(qemu-utils libnbd-bin nbdkit fio openssl iproute2 valgrind)
missing=()
for pkg in "${want_debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL refuses to run as root: when secondsite runs as root, its embedded PostgreSQL runs as
# this unprivileged system user (src/persistence/embedded/postgres-user.ts).
pg_user="${SECONDSITE_POSTGRES_USER:-secondsite-pg}"
if [ "$(id -u)" -eq 0 ] && ! getent passwd "$pg_user" >/dev/null; then
  echo "setup: creating system user $pg_user (runs the embedded PostgreSQL)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$pg_user"
fi

# npm packages: reinstall only when the lock file changed since the last install.
stamp=node_modules/.secondsite-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# Native addon (sparse-file primitives Node lacks: SEEK_DATA/SEEK_HOLE, fallocate).
if [ -f native/binding.gyp ]; then
  src_hash=$(cat native/binding.gyp native/src/* | sha256sum | cut -d' ' -f1)
  native_stamp=native/build/.src.sha256
  if [ ! -f native/build/Release/secondsite_native.node ] || [ ! -f "$native_stamp" ] || [ "$(cat "$native_stamp")" != "$src_hash" ]; then
    echo "setup: building the native addon"
    gyp=$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
    [ -f "$gyp" ] || gyp=/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
    (cd native && node "$gyp" rebuild --nodedir="${NODEDIR:-/usr}" --loglevel=error >/dev/null)
    echo "$src_hash" > "$native_stamp"
  fi
fi
