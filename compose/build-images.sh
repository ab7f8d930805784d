#!/usr/bin/env bash
# Builds the images compose/ and the Docker tests use, with no network
# inside any build: the shiftlab image installs from a wheelhouse built here.
#
#   compose/build-images.sh            (base image: $BASE_IMAGE, default python:3.11-slim)
#   BASE_IMAGE=shiftlab/python-base:local compose/build-images.sh   (no registry at all:
#                                       run compose/build-base-image.sh first)
#
# Environment: PYTHON (default python3; must match the base image's Python
# minor version, as the wheelhouse holds compiled wheels), TAG (default local).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
TAG="${TAG:-local}"
PYTHON="${PYTHON:-python3}"

echo "== wheelhouse (compose/wheelhouse) with $($PYTHON --version)"
rm -f compose/wheelhouse/shiftlab-*.whl  # always this checkout's code; the dependencies' wheels are reused
$PYTHON -m pip wheel -q --disable-pip-version-check . -w compose/wheelhouse

echo "== shiftlab/shiftlab:$TAG from $BASE_IMAGE"
docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f compose/Dockerfile -t "shiftlab/shiftlab:$TAG" compose

echo "== shiftlab/sample:$TAG from $BASE_IMAGE"
docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f compose/Dockerfile.sample -t "shiftlab/sample:$TAG" shiftlab

docker image ls --filter "reference=shiftlab/*"
