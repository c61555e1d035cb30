"""SQL-level tests of the plpgsql that needs no worker, pg_regress style: each
tests/sql/NAME.sql runs through psql in a database of its own (the worker serves
another one, so nothing but the script touches it) and its output must equal
tests/sql/expected/NAME.out. After a deliberate change, rewrite the expected files
with SQL_TESTS_ACCEPT=1 and read the diff before committing it."""

import difflib
import glob
import os
import subprocess

import pytest

from harness import PG_BIN

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = sorted(glob.glob(os.path.join(HERE, "sql", "*.sql")))
PSQL = f"{PG_BIN}/psql"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: os.path.basename(p)[:-4])
def test_sql_script_output_matches_expected(cluster, script):
    name = os.path.basename(script)[:-4]
    db = f"sqltest_{name}"
    with cluster.connect() as conn:
        conn.execute(f"CREATE DATABASE {db}")
    with cluster.connect(dbname=db) as conn:
        conn.execute("CREATE EXTENSION sequin_sf")
    run = subprocess.run(
        [PSQL, "-X", "-a", "-q", "-v", "ON_ERROR_STOP=0", "-h", "127.0.0.1",
         "-p", str(cluster.port), "-U", "postgres", "-d", db, "-f", script],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        env={**os.environ, "PGOPTIONS": "-c lc_messages=C"},
    )
    # psql names the script and line in each error; keep only the file's base name
    output = run.stdout.replace(os.path.dirname(script) + "/", "")
    expected_path = os.path.join(HERE, "sql", "expected", f"{name}.out")
    if os.environ.get("SQL_TESTS_ACCEPT"):
        with open(expected_path, "w") as f:
            f.write(output)
    with open(expected_path) as f:
        expected = f.read()
    if output != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(True), output.splitlines(True), "expected", "actual"))
        pytest.fail(f"{name}.sql output differs from expected/{name}.out:\n{diff}")
