#!/usr/bin/env bash
# Installs Debian's Chromium and ChromeDriver for the JupyterLab browser test (needs root + apt).
# Exits 0 when they are present afterwards, 1 otherwise (the test then skips with a message).
set -u
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: not root or no apt-get: cannot install chromium (the browser test will be skipped)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
