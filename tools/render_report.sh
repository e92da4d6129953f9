#!/usr/bin/env bash
# Build the Snakemake report of a finished run and render its first page to a PNG with headless
# Chromium (Debian: apt-get install chromium). Extra arguments go to snakemake (e.g. --configfile).
#   bash tools/render_report.sh [results-dir] [snakemake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-results}
shift || true
.venv/bin/snakemake "$@" --config "results=$results" --report "$results/report.html"
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=1400,1000 --virtual-time-budget=10000 \
  --screenshot="$results/report.png" "file://$(realpath "$results/report.html")"
rm -rf "$profile"
echo "report: $results/report.html, first page: $results/report.png"
