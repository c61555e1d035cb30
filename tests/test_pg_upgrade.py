"""pg_upgrade of a database with a running sync, from one PostgreSQL major to a newer
one: the sync goes on without a new backfill, the write log keeps its unsent entries,
and each is sent once.

It needs two majors with sequin_sf installed, named by PG_UPGRADE_FROM and
PG_UPGRADE_TO (their bin directories): `make test-pg-upgrade FROM=16 TO=18` builds
neither, so run it after `make build PG=16` and `make build PG=18` (CI does). Debian's
15.20 cannot be upgraded into the 16-18 builds this machine installs (its catalogs carry
a column option those older minors refuse): see the README's upgrade section."""

import os
import subprocess
import tempfile

import pytest

from harness import (
    Cluster,
    Emulator,
    create_emulator_credential,
    pg_major,
    query_rows,
    query_value,
    sf_records,
    wait_backfilled,
    wait_for,
)

FROM_BIN = os.environ.get("PG_UPGRADE_FROM")
TO_BIN = os.environ.get("PG_UPGRADE_TO")
SYNC = "up"


def has_extension(bin_dir):
    pkglib = subprocess.run([f"{bin_dir}/pg_config", "--pkglibdir"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return os.path.exists(os.path.join(pkglib, "sequin_sf.so"))


def skip_reason():
    if not FROM_BIN or not TO_BIN:
        return "needs PG_UPGRADE_FROM and PG_UPGRADE_TO (make test-pg-upgrade FROM=16 TO=18)"
    for b in (FROM_BIN, TO_BIN):
        if not has_extension(b):
            return f"sequin_sf is not installed into {b} (make build PG={pg_major(b)})"
    if pg_major(FROM_BIN) >= pg_major(TO_BIN):
        return f"pg_upgrade goes to a newer major, not {pg_major(FROM_BIN)} -> {pg_major(TO_BIN)}"
    return None


pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def pg_upgrade(old, new):
    """Runs pg_upgrade as the postgres user, both clusters stopped. The servers it starts
    load no sequin_sf worker: nothing may write while the catalogs are moved."""
    work = tempfile.mkdtemp(prefix="sequin-sf-upgrade-", dir="/tmp")
    os.chmod(work, 0o777)
    no_worker = "-c shared_preload_libraries=''"
    run = subprocess.run(
        ["sudo", "-u", "postgres", f"{new.bin_dir}/pg_upgrade",
         "-b", old.bin_dir, "-B", new.bin_dir, "-d", old.datadir, "-D", new.datadir,
         "-p", str(old.port), "-P", str(new.port), "-U", "postgres",
         "-o", no_worker, "-O", no_worker],
        cwd=work, capture_output=True, text=True,
    )
    if run.returncode != 0:
        reports = subprocess.run(
            ["sh", "-c", f"cat {new.datadir}/pg_upgrade_output.d/*/*.txt"
                         f" {new.datadir}/pg_upgrade_output.d/*/log/*.log | tail -40"],
            capture_output=True, text=True).stdout
        pytest.fail(f"pg_upgrade failed:\n{run.stdout}\n{run.stderr}\n{reports}")


def test_pg_upgrade_keeps_the_sync_its_cursors_and_its_unsent_writes():
    emu = Emulator("--seed", "5", "--generate", "Account=5,Contact=40")
    old = Cluster(bin_dir=FROM_BIN)
    new = None
    try:
        conn = old.connect()
        conn.execute("CREATE EXTENSION sequin_sf")
        create_emulator_credential(conn, emu)
        conn.execute(f"SELECT sequin_sf.create_sync('{SYNC}', credential => 'emu',"
                     " collections => ARRAY['Contact'])")
        wait_backfilled(conn, SYNC)
        backfilled = query_rows(
            conn, "SELECT backfill_finished_at, rows_done FROM sequin_sf.sync_status")
        # writes waiting to be sent when the server is upgraded
        conn.execute(f"SELECT sequin_sf.pause_sync('{SYNC}')")
        conn.execute("INSERT INTO salesforce.contact (last_name) VALUES"
                     " ('Upgraded 1'), ('Upgraded 2'), ('Upgraded 3')")
        [cid] = [r[0] for r in query_rows(
            conn, "SELECT id FROM salesforce.contact WHERE id IS NOT NULL ORDER BY id LIMIT 1")]
        conn.execute("UPDATE salesforce.contact SET title = 'Set before the upgrade'"
                     " WHERE id = %s", (cid,))
        assert query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log"
                                 " WHERE state = 'new'") == 4
        contacts_before = len(sf_records(emu, "SELECT Id FROM Contact"))
        conn.close()
        old.stop()

        # 18 turns data checksums on by default; the old cluster has none
        new = Cluster(bin_dir=TO_BIN, initdb_args=(
            ["--no-data-checksums"] if pg_major(TO_BIN) >= 18 else []))
        new.stop()
        pg_upgrade(old, new)
        # the credential key lives in the data directory, which pg_upgrade does not copy
        subprocess.run(["cp", "-p", os.path.join(old.datadir, "sequin_sf.key"),
                        os.path.join(new.datadir, "sequin_sf.key")], check=True)
        new.start()

        conn = new.connect()
        assert query_value(conn, "SHOW server_version_num")[:2] == str(pg_major(TO_BIN))
        assert query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log"
                                 " WHERE state = 'new'") == 4
        conn.execute(f"SELECT sequin_sf.resume_sync('{SYNC}')")
        # (await_writes reports a session's own writes; these were made before the upgrade)
        wait_for(lambda: query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log"
                                           " WHERE state = 'succeeded'") == 4,
                 timeout=120, what="the writes made before the upgrade to be sent")
        assert query_value(conn, "SELECT count(*) FROM salesforce._sync_write_log"
                                 " WHERE state <> 'succeeded'") == 0
        # each write sent once
        names = [r["LastName"] for r in sf_records(emu, "SELECT LastName FROM Contact")]
        assert sorted(n for n in names if n.startswith("Upgraded")) == [
            "Upgraded 1", "Upgraded 2", "Upgraded 3"]
        assert len(names) == contacts_before + 3
        assert emu.control("GET", f"records/Contact/{cid}")["Title"] == "Set before the upgrade"
        # no new backfill, and changes made in Salesforce keep arriving
        assert query_rows(
            conn, "SELECT backfill_finished_at, rows_done FROM sequin_sf.sync_status") == backfilled
        emu.control("PATCH", f"records/Contact/{cid}", {"Title": "After the upgrade"})
        wait_for(lambda: query_value(conn, "SELECT title FROM salesforce.contact WHERE id = %s",
                                     (cid,)) == "After the upgrade",
                 timeout=120, what="a Salesforce change made after the upgrade")
        assert query_value(conn, "SELECT count(*) FROM salesforce.contact") == contacts_before + 3
        conn.close()
    finally:
        if new is not None:
            new.destroy()
        old.destroy()
        emu.stop()
