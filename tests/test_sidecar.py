"""The engine run beside the database: `sequin-sf` (crates/sidecar) connects over a
connection string to a Postgres where the extension's SQL objects are installed but its
library is not preloaded, so no background worker runs; the sidecar backfills, polls
and writes back. Two sidecars share the work by the per-sync lock: one runs the sync,
the other takes over when the first is killed, and nothing is lost or sent twice."""

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

from harness import (Cluster, Sidecar, create_emulator_credential, free_port, query_rows,
                     query_value, sequin_sf_cli, sf_records, sidecar_key, wait_backfilled,
                     wait_for, wait_settled)
from prometheus_client.parser import text_string_to_metric_families


def sync_lock_holder(conn, sync):
    """The pid of the session holding `sync`'s advisory lock (None: nobody)."""
    return query_value(
        conn,
        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.classid::int = hashtext('sequin_sf sync') AND l.objid::int = hashtext(%s)",
        (sync,),
    )


def insert_contact(conn, last_name):
    conn.execute("INSERT INTO salesforce.contact (last_name) VALUES (%s)", (last_name,))
    return query_value(conn, "SELECT max(id) FROM salesforce._sync_write_log")


def unpreloaded_sync(emulator, settings=None):
    """A cluster without sequin_sf preloaded (no worker; `settings` added), the
    extension's objects, a credential and a sync of Contact and Account; returns
    (cluster, connection, key file): a copy of the key the credential was sealed with,
    as the sidecar gets it."""
    cluster = Cluster(settings={"shared_preload_libraries": "''", **(settings or {})})
    conn = cluster.connect()
    conn.execute("CREATE EXTENSION sequin_sf")
    create_emulator_credential(conn, emulator)
    conn.execute(
        "SELECT sequin_sf.create_sync('emu', credential => 'emu',"
        " collections => ARRAY['Contact', 'Account'], rate_limit_requests => 100000)")
    # the library is not preloaded: no worker of ours runs in the server
    assert query_value(
        conn, "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'sequin_sf%%'"
    ) == 0
    return cluster, conn, sidecar_key(cluster)


def test_a_sidecar_syncs_without_the_worker_and_a_second_one_takes_over(start_emulator):
    emulator = start_emulator("--seed", "5", "--generate", "Account=20,Contact=300")
    cluster, conn, key = unpreloaded_sync(emulator)
    sidecars = []
    try:
        first = Sidecar(cluster.dsn(), key, listen=f"127.0.0.1:{free_port()}")
        sidecars.append(first)
        wait_backfilled(conn, "emu")
        assert wait_for(lambda: first.get("/healthz")[0] == 200, what="healthz 200")
        status, text = first.get("/metrics")
        assert status == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        for obj in ("Contact", "Account"):
            assert samples[("sequin_sf_lag_seconds",
                            (("collection", obj), ("sync", "emu")))] >= 0
        contact = (("collection", "Contact"), ("sync", "emu"))
        assert samples[("sequin_sf_backfill_rows_done", contact)] == 300
        assert ("sequin_sf_sidecar_last_pass_age_seconds", ()) in samples
        assert first.get("/nothing")[0] == 404
        stored = {r[0] for r in query_rows(conn, "SELECT id FROM salesforce.contact")}
        assert stored == {r["Id"] for r in sf_records(emulator, "SELECT Id FROM Contact")}

        # writes go out through the sidecar
        log_id = insert_contact(conn, "Sidecar-One")
        assert wait_settled(conn, log_id) == "succeeded", first.output()
        assert len(sf_records(
            emulator, "SELECT Id FROM Contact WHERE LastName = 'Sidecar-One'")) == 1

        # a second sidecar waits: the first holds the sync's lock
        holder = wait_for(lambda: sync_lock_holder(conn, "emu"), what="the sync's lock")
        second = Sidecar(cluster.dsn(), key)
        sidecars.append(second)
        wait_for(lambda: query_value(
            conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sequin-sf'"
        ) == 2, what="both sidecars connected")
        assert sync_lock_holder(conn, "emu") == holder

        # the first dies without a word: its session ends, the second takes the sync
        first.stop(signal.SIGKILL)
        wait_for(lambda: sync_lock_holder(conn, "emu") not in (None, holder), timeout=30,
                 what="the second sidecar taking the sync over")
        log_id = insert_contact(conn, "Sidecar-Two")
        assert wait_settled(conn, log_id) == "succeeded", second.output()
        for name in ("Sidecar-One", "Sidecar-Two"):
            assert len(sf_records(
                emulator, f"SELECT Id FROM Contact WHERE LastName = '{name}'")) == 1

        # a change in Salesforce reaches the table through the second
        some_id = sorted(stored)[0]
        emulator.control("PATCH", f"records/Contact/{some_id}", {"Title": "Polled-By-Sidecar"})
        wait_for(lambda: query_value(
            conn, "SELECT title FROM salesforce.contact WHERE id = %s", (some_id,)
        ) == "Polled-By-Sidecar", timeout=120, what="the poll through the second sidecar")

        # SIGTERM stops it cleanly, and its lock goes with its session
        assert second.stop() == 0, second.output()
        wait_for(lambda: sync_lock_holder(conn, "emu") is None, what="the lock released")
    finally:
        for s in sidecars:
            s.stop(signal.SIGKILL)
        conn.close()
        cluster.destroy()


def test_a_sidecar_connects_again_after_the_server_restarts(start_emulator):
    emulator = start_emulator("--seed", "6", "--generate", "Account=10,Contact=100")
    cluster, conn, key = unpreloaded_sync(emulator)
    sidecar = Sidecar(cluster.dsn(), key)
    try:
        wait_backfilled(conn, "emu")
        conn.close()
        cluster.restart()
        conn = cluster.connect()
        # the sidecar is back on its sync: a write goes out and a change comes in
        wait_for(lambda: sync_lock_holder(conn, "emu"), timeout=60,
                 what="the sidecar holding the sync again")
        log_id = insert_contact(conn, "After-Restart")
        assert wait_settled(conn, log_id) == "succeeded", sidecar.output()
        some_id = query_value(conn, "SELECT min(id) FROM salesforce.contact")
        emulator.control("PATCH", f"records/Contact/{some_id}", {"Title": "After-Restart"})
        wait_for(lambda: query_value(
            conn, "SELECT title FROM salesforce.contact WHERE id = %s", (some_id,)
        ) == "After-Restart", timeout=120, what="a poll after the restart")
        assert "connection was lost" in sidecar.output()
        assert sidecar.proc.poll() is None
    finally:
        sidecar.stop(signal.SIGKILL)
        conn.close()
        cluster.destroy()


def test_killing_sidecars_under_faults_loses_and_duplicates_nothing(start_emulator):
    """Rounds of inserts and updates while Salesforce is slow and answers some composite
    calls 503, each round ended by `kill -9` of the sidecar and a new one started.
    Inserts go as upserts by an external id (safe to send again after an unknown
    outcome). In the end every entry succeeded, each insert is exactly one record in
    Salesforce, and every row's title is Salesforce's."""
    rng = random.Random(11)
    emulator = start_emulator("--seed", "8", "--generate", "Account=5,Contact=60")
    cluster, conn, key = unpreloaded_sync(emulator)
    sidecar = Sidecar(cluster.dsn(), key)
    try:
        wait_backfilled(conn, "emu")
        conn.execute("SELECT sequin_sf.alter_write_settings('emu',"
                     " external_id_fields => '{\"Contact\": \"External_Id__c\"}')")
        ids = [r[0] for r in query_rows(conn, "SELECT id FROM salesforce.contact ORDER BY id")]
        emulator.control("PUT", "limits", {"latency_ms": 300})
        kills_in_flight = 0
        for rnd in range(6):
            emulator.control("POST", "faults",
                             {"kind": "503", "count": 2, "path_contains": "/composite"})
            conn.execute(
                "INSERT INTO salesforce.contact (last_name)"
                " SELECT 'Chaos-' || %s || '-' || g FROM generate_series(1, 40) g", (rnd,))
            for cid in rng.sample(ids, 10):
                conn.execute("UPDATE salesforce.contact SET title = %s WHERE id = %s",
                             (f"round {rnd}", cid))
            time.sleep(rng.uniform(0.1, 1.2))
            kills_in_flight += query_value(
                conn, "SELECT count(*) FROM salesforce._sync_write_log WHERE state = 'pending'")
            sidecar.stop(signal.SIGKILL)
            sidecar = Sidecar(cluster.dsn(), key)
        emulator.control("DELETE", "faults")
        emulator.control("PUT", "limits", {"latency_ms": 0})
        ok, bad, still_open = query_rows(
            conn, "SELECT * FROM sequin_sf.await_writes('300 seconds')")[0]
        states = query_rows(
            conn, "SELECT action, state, count(*) FROM salesforce._sync_write_log GROUP BY 1, 2")
        assert (bad, still_open) == (0, 0), (states, sidecar.output())
        assert kills_in_flight > 0, "no kill met a call in flight: the test proved nothing"

        in_sf = {}
        for r in sf_records(emulator,
                            "SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Chaos-%'"):
            in_sf.setdefault(r["LastName"], []).append(r["Id"])
        rows = dict(query_rows(
            conn, "SELECT last_name, id FROM salesforce.contact WHERE last_name LIKE 'Chaos-%%'"))
        assert len(rows) == 240
        assert {name: [sf_id] for name, sf_id in rows.items()} == in_sf
        titles = dict(query_rows(
            conn, "SELECT id, title FROM salesforce.contact WHERE title LIKE 'round %%'"))
        assert titles == {r["Id"]: r["Title"] for r in sf_records(
            emulator, "SELECT Id, Title FROM Contact WHERE Title LIKE 'round %'")}
    finally:
        sidecar.stop(signal.SIGKILL)
        conn.close()
        cluster.destroy()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(directory, name):
    """A CA certificate and key (PEM) in `directory`."""
    ca, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", key, "-out", ca)
    return ca, key


def server_certificate(directory, ca, ca_key):
    """A certificate for 127.0.0.1 signed by the CA, and its key, readable by the
    server (the postgres user's, mode 0600)."""
    cert, key = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    csr, ext = os.path.join(directory, "server.csr"), os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-out", cert, "-extfile", ext)
    shutil.chown(key, "postgres", "postgres")
    os.chmod(key, 0o600)
    shutil.chown(cert, "postgres", "postgres")
    return cert, key


def client_certificate(directory, ca, ca_key, user):
    """A client certificate for `user` (its CN) signed by the CA, and its key."""
    cert, key = os.path.join(directory, "client.pem"), os.path.join(directory, "client.key")
    csr, ext = os.path.join(directory, "client.csr"), os.path.join(directory, "client.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={user}",
            "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-out", cert, "-extfile", ext)
    return cert, key


def test_a_sidecar_speaks_tls_and_checks_the_server_certificate(start_emulator):
    emulator = start_emulator("--seed", "9", "--generate", "Account=5,Contact=40")
    directory = tempfile.mkdtemp(prefix="sequin-sf-tls-")
    os.chmod(directory, 0o755)
    ca, ca_key = make_ca(directory, "the-ca")
    other_ca, _ = make_ca(directory, "another-ca")
    cert, key = server_certificate(directory, ca, ca_key)
    cluster, conn, key_file = unpreloaded_sync(
        emulator, {"ssl": "on", "ssl_cert_file": f"'{cert}'", "ssl_key_file": f"'{key}'",
                   "ssl_ca_file": f"'{ca}'"})
    dsn = cluster.dsn() + " sslmode=require"
    sidecars = []
    try:
        # a certificate from another CA: refused, nothing synced
        wrong = Sidecar(dsn, key_file, extra=["--tls-ca-file", other_ca])
        sidecars.append(wrong)
        wait_for(lambda: "could not connect" in wrong.output(), timeout=30,
                 what="the connection refused")
        assert "certificate" in wrong.output()
        assert query_value(conn, "SELECT to_regclass('salesforce.contact') IS NULL")
        wrong.stop()

        right = Sidecar(dsn, key_file, extra=["--tls-ca-file", ca])
        sidecars.append(right)
        wait_backfilled(conn, "emu")
        assert query_rows(
            conn, "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                  " WHERE a.application_name = 'sequin-sf'") == [(True,)]
        log_id = insert_contact(conn, "Over-TLS")
        assert wait_settled(conn, log_id) == "succeeded", right.output()
        right.stop()

        # not checked at all, when asked: it connects, and says so
        blind = Sidecar(dsn, key_file, extra=["--tls-no-verify"])
        sidecars.append(blind)
        wait_for(lambda: "not checked" in blind.output(), timeout=30, what="the warning")
        wait_for(lambda: sync_lock_holder(conn, "emu"), timeout=30, what="the sync taken")
        blind.stop()

        # libpq's words in the connection string, as a managed service's console gives it
        by_name = cluster.dsn().replace("host=127.0.0.1", "host=localhost")
        checked = {
            "verify-full, its CA": (f"{dsn} sslmode=verify-full sslrootcert={ca}", True),
            "verify-full, another CA": (f"{dsn} sslmode=verify-full sslrootcert={other_ca}", False),
            # the certificate names 127.0.0.1, not localhost: verify-full refuses it,
            # verify-ca checks the chain only
            "verify-full, wrong name": (f"{by_name} sslmode=verify-full sslrootcert={ca}", False),
            "verify-ca, wrong name": (f"{by_name} sslmode=verify-ca sslrootcert={ca}", True),
        }
        uri = (f"postgresql://postgres@127.0.0.1:{cluster.port}/{cluster.database}"
               f"?sslmode=verify-full&sslrootcert={ca.replace('/', '%2F')}")
        checked["a URI, verify-full"] = (uri, True)
        for case, (conninfo, connects) in checked.items():
            result = sequin_sf_cli("install", "--database-url", conninfo)
            assert (result.returncode == 0) == connects, (case, result.stderr)
            if not connects:
                assert "certificate" in result.stderr, (case, result.stderr)

        # what cannot work together is refused before connecting, with what to do
        for conninfo, extra, said in [
            (f"{dsn} sslmode=verify-full", ["--tls-no-verify"], "leave out one"),
            (f"{dsn} sslrootcert={ca}", ["--tls-ca-file", ca], "given twice"),
            (f"{dsn} sslmode=verify", [], "verify-full"),
            (f"{dsn} sslcert={cert}", [], "sslkey"),
        ]:
            result = sequin_sf_cli("install", "--database-url", conninfo, *extra)
            assert result.returncode == 2 and said in result.stderr, (conninfo, result.stderr)

        # a client certificate where the server asks for one (Cloud SQL can)
        client_cert, client_key = client_certificate(directory, ca, ca_key, "cert_user")
        conn.execute("CREATE ROLE cert_user LOGIN SUPERUSER")
        hba = os.path.join(cluster.datadir, "pg_hba.conf")
        with open(hba) as f:
            rules = f.read()
        with open(hba, "w") as f:
            f.write("hostssl all cert_user 127.0.0.1/32 trust clientcert=verify-full\n"
                    "host all cert_user 127.0.0.1/32 reject\n" + rules)
        conn.execute("SELECT pg_reload_conf()")
        as_user = f"{cluster.dsn(user='cert_user')} sslmode=verify-full sslrootcert={ca}"
        refused = sequin_sf_cli("install", "--database-url", as_user)
        assert refused.returncode == 1 and "certificate" in refused.stderr, refused.stderr
        client = Sidecar(f"{as_user} sslcert={client_cert} sslkey={client_key}", key_file)
        sidecars.append(client)
        try:
            wait_for(lambda: query_value(
                conn, "SELECT s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                      " WHERE a.usename = 'cert_user' AND a.application_name = 'sequin-sf'"),
                     timeout=30, what="the connection with the client certificate")
        except AssertionError as e:
            raise AssertionError(f"{e}: {client.output()}") from None
    finally:
        for s in sidecars:
            s.stop(signal.SIGKILL)
        conn.close()
        cluster.destroy()
