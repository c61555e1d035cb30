#!/usr/bin/env bash
# Runs every benchmark and prints its figures. Each benchmark measures its own baseline
# in the same run; nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
echo "== emulator (generation, memory, /query and Bulk 2.0 throughput)"
target/release/emulator-bench
echo "== backfill of 1,000,000 Contacts vs COPY"
$PY bench/backfill.py
echo "== change lag, 10 collections at 100,000 requests/day"
$PY bench/change_lag.py
echo "== write-back: API calls per 10,000 changed rows, commit-to-succeeded latency"
$PY bench/write_back.py
echo "== capture trigger overhead vs the same table without it"
$PY bench/trigger_overhead.py
