#!/usr/bin/env bash
# Idempotent set-up for `make test-compose` on a fresh Debian machine: everything
# scripts/bootstrap.sh installs (the virtualenv's dev extra has podman-compose), plus podman
# with the pieces it needs here (runc, netavark, aardvark-dns for container names, iptables
# for netavark) and mmdebstrap, which builds stand-in base images when no registry is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTSTRAP_EXTRA_APT="podman runc netavark aardvark-dns iptables mmdebstrap" exec scripts/bootstrap.sh
