#!/usr/bin/env bash
# Runs every benchmark and prints its figures. Each benchmark measures its own baseline
# in the same run; nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# `make bench PG=N` sets PG_BIN; every benchmark's cluster runs that version
echo "== PostgreSQL: $("${PG_BIN:-/usr/lib/postgresql/15/bin}/postgres" --version)"
echo "== emulator (generation, memory, /query and Bulk 2.0 throughput)"
target/release/emulator-bench
echo "== backfill of 1,000,000 Contacts vs COPY"
$PY bench/backfill.py
echo "== the same backfill by sequin-sf beside the database vs psql \\copy over TCP"
$PY bench/backfill.py --sidecar
echo "== REST backfill of 200,000 Contacts, max_concurrent_requests 4, without and with 100 ms per call"
$PY bench/backfill.py --rest --rows 200000 --max-concurrent 4
$PY bench/backfill.py --rest --rows 200000 --max-concurrent 4 --latency-ms 100
echo "== change lag, 10 collections at 100,000 requests/day, then beside a second sync whose org answers 2 s late"
$PY bench/change_lag.py --slow-neighbour-ms 2000
echo "== the same polling by sequin-sf beside a Postgres without our library"
SEQUIN_SF_MODE=sidecar $PY bench/change_lag.py --no-events
echo "== write-back: API calls per 10,000 changed rows, commit-to-succeeded latency"
$PY bench/write_back.py
echo "== capture trigger overhead vs the same table without it"
$PY bench/trigger_overhead.py
echo "== the PL/pgSQL capture sequin-sf installs beside the database, vs the same table without it"
$PY bench/trigger_overhead.py --plain --toast-rows 0
