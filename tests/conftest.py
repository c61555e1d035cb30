"""pytest fixtures: real emulator and Postgres processes (see harness.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Cluster, Emulator, make_tls_cert  # noqa: E402


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
    """An autocommit connection to a database with the extension created."""
    conn = cluster.connect()
    conn.execute("CREATE EXTENSION IF NOT EXISTS sequin_sf")
    yield conn
    conn.close()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: a long soak, run only with SEQUIN_SF_LONG=1 (make test-long)"
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked `long` are skipped unless SEQUIN_SF_LONG=1."""
    if os.environ.get("SEQUIN_SF_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="a long soak: set SEQUIN_SF_LONG=1 (make test-long)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
