#!/usr/bin/env bash
# Builds the images compose/ and the Docker tests use, with no network
# inside any build: the shiftlab image installs from a wheelhouse made here.
#
#   compose/build-images.sh            (base image: $BASE_IMAGE, default python:3.11-slim)
#   BASE_IMAGE=shiftlab/python-base:local compose/build-images.sh   (no registry at all:
#                                       run compose/build-base-image.sh first)
#
# Environment: PYTHON (default python3, any 3.11+ with pip), TARGET_PYTHON
# (default 3.11: the base image's Python, which the wheelhouse's compiled
# wheels are fetched for), TAG (default local).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE="${BASE_IMAGE:-python:3.11-slim}"
TAG="${TAG:-local}"
PYTHON="${PYTHON:-python3}"
TARGET_PYTHON="${TARGET_PYTHON:-3.11}"
WHEELS=compose/wheelhouse

echo "== wheelhouse ($WHEELS) for Python $TARGET_PYTHON on $(uname -m)"
mkdir -p "$WHEELS"
rm -f "$WHEELS"/shiftlab-*.whl  # always this checkout's code; the dependencies' wheels are kept
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WHEELS" .
# The dependencies as binary wheels for the image's Python, whatever Python runs this script.
"$PYTHON" -m pip download -q --disable-pip-version-check -d "$WHEELS" --only-binary=:all: \
    --python-version "$TARGET_PYTHON" --implementation cp --platform "manylinux2014_$(uname -m)" \
    --platform "manylinux_2_17_$(uname -m)" --platform "manylinux_2_28_$(uname -m)" "$WHEELS"/shiftlab-*.whl

echo "== shiftlab/shiftlab:$TAG from $BASE_IMAGE"
docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f compose/Dockerfile -t "shiftlab/shiftlab:$TAG" compose

echo "== shiftlab/sample:$TAG from $BASE_IMAGE"
docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -f compose/Dockerfile.sample -t "shiftlab/sample:$TAG" shiftlab

docker image ls --filter "reference=shiftlab/*"
