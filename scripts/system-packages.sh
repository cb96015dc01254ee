#!/usr/bin/env bash
# Install the Debian packages listed in system-packages.txt that are missing (tests need them:
# a real PgBouncer, a real browser). Needs root and apt-get; elsewhere it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=$( (grep -v '^\s*#' system-packages.txt || true) | tr -s ' \n' ' ')
missing=""
for package in $wanted; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages:$missing (install them with your package manager)" >&2
  exit 1
fi
echo "installing system packages:$missing"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
