#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: Debian packages the suite runs
# for real (Prometheus, Alertmanager, blackbox_exporter, Chromium), then the project's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
APT_PACKAGES=(prometheus prometheus-alertmanager prometheus-blackbox-exporter chromium docker-compose)
APT_BINARIES=(prometheus prometheus-alertmanager prometheus-blackbox-exporter chromium docker-compose)

need_apt=()
for i in "${!APT_PACKAGES[@]}"; do
  command -v "${APT_BINARIES[$i]}" >/dev/null 2>&1 || need_apt+=("${APT_PACKAGES[$i]}")
done
# Packages a caller adds by name (scripts/bootstrap-compose.sh: podman and its helpers).
for pkg in ${BOOTSTRAP_EXTRA_APT:-}; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "bootstrap: missing ${need_apt[*]}; install them as root" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  # Packages must not start their system services: we run our own instances.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  [ "$created_policy" -eq 0 ] || $SUDO rm -f "$policy"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing the project into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
