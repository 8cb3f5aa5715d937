#!/usr/bin/env bash
# Debian packages clipforge needs beyond PyPI. Idempotent: installs only what is missing; needs root (or sudo)
# only when something is missing. Keep this list short and say why each package is here.
set -euo pipefail
needed=(
  wordnet-base   # WordNet 3.0 dict files: synset head lemmas for `clipforge metadata build` (offline)
  chromium       # headless browser: the report test loads report.html, checks console errors, takes a screenshot
)
missing=()
for pkg in "${needed[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "clipforge: installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
