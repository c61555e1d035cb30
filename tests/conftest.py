"""pytest fixtures: real emulator and Postgres processes (see harness.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SIDECAR_MODE, Cluster, Emulator, make_tls_cert  # noqa: E402


@pytest.fixture
def start_emulator():
    """Factory: start_emulator('--generate', 'Contact=100') -> Emulator; stopped at teardown."""
    started = []

    def start(*args, tls=None):
        emu = Emulator(*args, tls=tls)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(start_emulator):
    return start_emulator("--seed", "7", "--generate", "Account=50,Contact=200,Opportunity=80")


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    return make_tls_cert(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.destroy()


@pytest.fixture
def db(cluster):
    """An autocommit connection to a database with sequin_sf installed (as SEQUIN_SF_MODE
    says: harness.py)."""
    conn = cluster.connect()
    cluster.install(conn)
    yield conn
    conn.close()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: a long soak, run only with SEQUIN_SF_LONG=1 (make test-long)"
    )
    config.addinivalue_line(
        "markers", "extension_only(why): tests what only the extension has (skipped with"
        " SEQUIN_SF_MODE=sidecar)"
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` are skipped unless SEQUIN_SF_LONG=1; those marked
    `extension_only`, with SEQUIN_SF_MODE=sidecar."""
    long_skip = pytest.mark.skip(reason="a long soak: set SEQUIN_SF_LONG=1 (make test-long)")
    for item in items:
        if "long" in item.keywords and os.environ.get("SEQUIN_SF_LONG") != "1":
            item.add_marker(long_skip)
        mark = item.get_closest_marker("extension_only")
        if mark and SIDECAR_MODE:
            item.add_marker(pytest.mark.skip(
                reason="the extension only: " + (mark.args[0] if mark.args else "")))
