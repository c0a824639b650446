#!/usr/bin/env bash
# Installs moto's S3 server (and boto3, which moto pulls in) for the
# archival-storage tests, once: a virtualenv in ~/.cache/cairn/moto-venv,
# reused by every later run. moto stands in for S3 where Garage cannot:
# storage classes, restore requests and object lock.
#
#   scripts/install-moto.sh   prints the path of the venv's python; progress
#                             on stderr. A rerun with the pinned version in
#                             place needs no network.
set -euo pipefail
version=5.2.5
venv="${CAIRN_MOTO_VENV:-$HOME/.cache/cairn/moto-venv}"
py="$venv/bin/python"
# moto[server] would also bring the dependencies of every other AWS service
# it mocks (cfn-lint, docker, aws-xray-sdk, ...); the S3 server needs only
# moto's S3 extra and the web framework of its server mode.
requirements=("moto[s3]==$version" "flask==3.1.3" "flask-cors==6.0.5")

# Already there? Asks the venv itself, so a half-finished install or a
# broken interpreter counts as missing.
if [[ -x "$py" ]] && "$py" - "$version" 2>/dev/null <<'PY'
import importlib.metadata as m, sys
assert m.version("moto") == sys.argv[1]
import boto3, flask, flask_cors  # noqa: F401  (the server and the tests' oracle need them)
PY
then
    echo "$py"
    exit 0
fi
echo "installing moto $version into $venv" >&2
[[ -x "$py" ]] || "${PYTHON:-python3}" -m venv "$venv" >&2
"$py" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
echo "$py"
