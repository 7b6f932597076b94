#!/usr/bin/env bash
# Idempotent set-up of everything airlock's demo and tests need on a Debian machine:
#   - Debian packages: docker-registry (CNCF distribution), skopeo, apache2-utils (htpasswd), openssl, postgresql,
#     chromium (the dashboard's browser tests drive it with Playwright), dosfstools and fusefat (a FAT32 file system)
#   - Azurite (npm) in .tools/ inside the project
#   - .venv with airlock installed (editable) and its dev tools, pinned by requirements.lock
# Safe to run again: each step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

need_apt=()
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # Playwright's own browser download is not used
[ -x /usr/sbin/mkfs.vfat ] || need_apt+=(dosfstools)  # a FAT32 "USB stick" for the removable-media tests
[ -x /usr/bin/fusefat ] || need_apt+=(fusefat)  # mounts it without root or a loop device (FUSE)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)  # a private cluster per test session
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

AZURITE_VERSION=3.35.0
if [ ! -x .tools/node_modules/.bin/azurite-blob ]; then
  echo "bootstrap: installing Azurite $AZURITE_VERSION into .tools/" >&2
  mkdir -p .tools
  (cd .tools && { [ -f package.json ] || echo '{"name":"airlock-tools","private":true}' > package.json; } \
     && npm install --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null)
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.airlock-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "bootstrap: installing airlock and its pinned dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip 2>/dev/null || true
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements.lock -e ".[dev]" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/bin/python -c "import airlock" # fail loudly if the install did not work
  touch "$stamp"
fi
# pip compiles the dependencies it installs, but nothing compiles an editable install's own modules:
# where PYTHONDONTWRITEBYTECODE is set, every airlock command would compile all of them first
# (`airlock --help`: 0.67-0.71 s without, 0.44-0.52 s with). Only what changed since is compiled again.
.venv/bin/python -m compileall -q src/airlock >/dev/null || true
