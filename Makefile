# sequin_sf: `make demo` and `make test` work on a fresh Debian 12 machine; both install
# what is missing first (scripts/install-deps.sh is idempotent).
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PYTEST    ?= .venv/bin/pytest
RUST_CRATES = -p soql -p sf-emulator -p salesforce -p sync-core -p pubsub

.PHONY: deps build emulator extension test unit-test e2e-test conformance lint demo demo-stop bench clean

deps:
	@scripts/install-deps.sh

emulator: deps
	cargo build --release -p sf-emulator

# Also installs the install scripts of earlier releases (sql/releases/), so that the
# upgrade test can create the extension at an old version and update it.
extension: deps
	cargo pgrx install --release --pg-config $(PG_CONFIG)
	install -m 644 sql/releases/*.sql $$($(PG_CONFIG) --sharedir)/extension/

build: emulator extension

# Every test: Rust unit/integration tests of the pure crates, then the end-to-end suite
# (real Postgres + background worker + emulator) and the conformance suite
# (simple-salesforce against the emulator).
test: build
	cargo fmt --all -- --check
	cargo test --release $(RUST_CRATES)
	$(PYTEST) -x -q --timeout 600 tests

unit-test: deps
	cargo test --release $(RUST_CRATES)

e2e-test: build
	$(PYTEST) -q --timeout 600 tests --ignore tests/conformance

conformance: emulator
	$(PYTEST) -q --timeout 600 tests/conformance

lint: deps
	cargo fmt --all -- --check
	cargo clippy --release $(RUST_CRATES) -- -D warnings
	cargo clippy --release -p sequin_sf -- -D warnings

demo: build
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

bench: build
	bench/run.sh

clean:
	scripts/demo.sh stop || true
	cargo clean
