"""The read side after a fault storm: Salesforce users and the application change
Contacts on both sides while API calls fail and the sync's worker is killed (so Postgres
crash-restarts), then the faults stop and the tables must match Salesforce again within
a stated bound.

The soak (`test_soak_*`, marked `long`) runs only with SEQUIN_SF_LONG=1 (`make
test-long`); SOAK_RUNS, SOAK_SECONDS, SOAK_SEED, SOAK_FAULT_KINDS, SOAK_FAULT_RATE and
SOAK_KILL_EVERY shape it; SOAK_EVENTS=1 puts both objects on Change Data Capture (the
org drops the change event streams now and then, a poll reconciles once an hour). Each run
prints its seed, and on a mismatch the sync's state (sync_status, cursors, the server
log's sequin_sf lines), so a failing run can be replayed with SOAK_SEED."""

import datetime
import os
import random
import signal
import threading
import time

import psycopg
import pytest

from harness import (
    SIDECAR_MODE,
    Cluster,
    Emulator,
    create_emulator_credential,
    query_rows,
    query_value,
    sf_records,
    wait_backfilled,
    wait_for,
    worker_pid,
)

SYNC = "soak"
CONTACT_FIELDS = ["Id", "LastName", "Title", "Department", "AccountId", "SystemModstamp"]
ACCOUNT_FIELDS = ["Id", "Name", "SystemModstamp"]
# Every fault kind the emulator answers a request with (not the Bulk job kinds, nor
# query_timeout, which moves backfills, not polls). "timeout" holds a request 65 s,
# past the client's 60 s timeout.
FAULT_KINDS = ["503", "500", "timeout", "drop", "drop_after", "invalid_session",
               "unable_to_lock_row", "request_limit"]


# ---------------------------------------------------------------------------------
# comparing Salesforce with the tables


def norm(v):
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
    if isinstance(v, str) and len(v) >= 23 and v[10] == "T" and v[4] == "-":
        t = datetime.datetime.strptime(v[:23] + v[23:].replace(":", ""),
                                       "%Y-%m-%dT%H:%M:%S.%f%z")
        return t.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")
    return v


def sf_state(emu, obj, fields):
    recs = sf_records(emu, f"SELECT {', '.join(fields)} FROM {obj}")
    return {r["Id"]: tuple(norm(r[f]) for f in fields) for r in recs}


def pg_state(conn, table, columns):
    rows = query_rows(conn, f"SELECT {', '.join(columns)} FROM salesforce.{table}"
                            " WHERE id IS NOT NULL")
    return {r[0]: tuple(norm(v) for v in r) for r in rows}


def differences(emu, conn):
    """What differs between Salesforce and the tables, by object: Ids missing from the
    table, Ids the table has that Salesforce does not (deleted there), and Ids whose
    values differ (Salesforce's, then the table's). Empty when they match."""
    out = {}
    for obj, table, fields, cols in (
        ("Contact", "contact", CONTACT_FIELDS,
         ["id", "last_name", "title", "department", "account_id", "system_modstamp"]),
        ("Account", "account", ACCOUNT_FIELDS, ["id", "name", "system_modstamp"]),
    ):
        sf, pg = sf_state(emu, obj, fields), pg_state(conn, table, cols)
        missing = sorted(set(sf) - set(pg))
        extra = sorted(set(pg) - set(sf))
        changed = {i: (sf[i], pg[i]) for i in set(sf) & set(pg) if sf[i] != pg[i]}
        dupes = query_value(conn, f"SELECT count(id) - count(DISTINCT id) FROM salesforce.{table}")
        if missing or extra or changed or dupes:
            out[obj] = {"missing": missing, "extra": extra, "changed": changed,
                        "duplicated": dupes}
    return out


def summary(diff):
    return {obj: {"missing": len(d["missing"]), "extra": len(d["extra"]),
                  "changed": len(d["changed"]), "duplicated": d["duplicated"]}
            for obj, d in diff.items()}


def sync_state(cluster):
    """The sync's state as an operator reads it, for a failure's message."""
    lines = []
    try:
        with cluster.connect() as c:
            for sql in (
                "SELECT now()",
                "SELECT * FROM sequin_sf.sync_status",
                "SELECT object_name, state, poll_cursor, deleted_cursor, caught_up_at,"
                " last_poll_at, last_error, last_error_at FROM sequin_sf._collections",
                "SELECT name, last_error, last_error_at, events_status,"
                " replay_id IS NOT NULL AS has_replay_id FROM sequin_sf._syncs",
                "SELECT pid, backend_type, application_name, backend_start, state"
                " FROM pg_stat_activity WHERE backend_type LIKE 'sequin_sf%'",
                "SELECT state, count(*) FROM salesforce._sync_write_log GROUP BY 1",
            ):
                with c.cursor() as cur:
                    cur.execute(sql)
                    names = [d.name for d in cur.description]
                    lines.append(sql)
                    for r in cur.fetchall():
                        lines.append("  " + ", ".join(f"{n}={v}" for n, v in zip(names, r)))
    except psycopg.Error as exc:
        lines.append(f"could not read the sync's state: {exc}")
    log = [l for l in cluster.log().splitlines() if "sequin_sf" in l or "terminat" in l]
    lines.append("server log (sequin_sf lines, last 60):")
    lines.extend("  " + l for l in log[-60:])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------
# the storm


class Storm:
    """Both sides changing Contacts, faults, and the worker killed now and then, for
    `seconds`; each actor is a thread that rides out the crash-restarts (its connection
    is opened again)."""

    def __init__(self, emu, cluster, seed, seconds, kill_every=15.0, events=False):
        self.emu, self.cluster = emu, cluster
        self.rnd = random.Random(seed)
        self.seconds, self.kill_every = seconds, kill_every
        self.stop = threading.Event()
        self.errors = []
        self.events = events
        self.counts = {"sf_edits": 0, "sf_deletes": 0, "app_updates": 0, "app_inserts": 0,
                       "kills": 0, "streams_dropped": 0}
        self.lock = threading.Lock()
        self.ids = sorted(sf_state(emu, "Contact", ["Id"]))
        self.accounts = sorted(sf_state(emu, "Account", ["Id"]))

    def count(self, what):
        with self.lock:
            self.counts[what] += 1

    def salesforce_users(self, rnd):
        """~8 title edits and ~0.7 deletes a second, as users in Salesforce (the control
        API: their own calls never fail)."""
        live = list(self.ids)
        n = 0
        while not self.stop.wait(0.11):
            rid = rnd.choice(live)
            n += 1
            if rnd.random() < 0.08:
                live.remove(rid)
                self.emu.control("DELETE", f"records/Contact/{rid}")
                self.count("sf_deletes")
            else:
                self.emu.control("PATCH", f"records/Contact/{rid}", {"Title": f"sf-{n}"})
                self.count("sf_edits")

    def application(self, rnd):
        """~6.5 department updates and ~1.9 inserts a second in Postgres."""
        conn = None
        n = 0
        while not self.stop.wait(0.12):
            try:
                if conn is None:
                    conn = self.cluster.connect()
                n += 1
                if rnd.random() < 0.22:
                    conn.execute(
                        "INSERT INTO salesforce.contact (last_name, department, account_id)"
                        " VALUES (%s, %s, %s)",
                        (f"app-{n}", f"dep-{n}", rnd.choice(self.accounts)))
                    self.count("app_inserts")
                else:
                    conn.execute("UPDATE salesforce.contact SET department = %s WHERE id = %s",
                                 (f"dep-{n}", rnd.choice(self.ids)))
                    self.count("app_updates")
            except psycopg.OperationalError:
                conn = None  # the server is restarting after a crash
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def killer(self):
        while not self.stop.wait(self.kill_every):
            try:
                with self.cluster.connect() as c:
                    pid = worker_pid(c, SYNC)
            except psycopg.OperationalError:
                continue
            if pid:
                os.kill(pid, signal.SIGKILL)
                self.count("kills")

    def stream_dropper(self, rnd):
        """With change events on: the org drops the change event streams now and then."""
        while not self.stop.wait(rnd.uniform(3, 9)):
            self.counts["streams_dropped"] += self.emu.control("POST", "cdc/drop_streams")["dropped"]

    def guarded(self, fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # reported by the test
            self.errors.append(exc)
            self.stop.set()

    def run(self, fault_kinds, fault_rate):
        per_kind = 1 - (1 - fault_rate) ** (1 / len(fault_kinds))
        for kind in fault_kinds:
            self.emu.control("POST", "faults", {"kind": kind, "rate": per_kind})
        threads = [
            threading.Thread(target=self.guarded,
                             args=(self.salesforce_users, random.Random(self.rnd.random()))),
            threading.Thread(target=self.guarded,
                             args=(self.application, random.Random(self.rnd.random()))),
            threading.Thread(target=self.guarded, args=(self.killer,)),
        ]
        if self.events:
            threads.append(threading.Thread(
                target=self.guarded, args=(self.stream_dropper, random.Random(self.rnd.random()))))
        for t in threads:
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in threads:
            t.join()
        self.emu.control("DELETE", "faults")
        assert not self.errors, self.errors


def connect_when_up(cluster, timeout=120):
    return wait_for(lambda: cluster.connect(), timeout=timeout, what="the server to accept connections")


def unsettled(conn):
    return query_value(
        conn,
        "SELECT (SELECT count(*) FROM salesforce._sync_write_log WHERE state IN ('new', 'pending'))"
        "     + (SELECT count(*) FROM salesforce._sync_write_batch)")


def poll_interval(conn):
    """One poll round's interval for the sync's budget (sequin_sf.poll_interval is
    not exposed: worked out as the worker does, salesforce::pacing::poll_interval)."""
    rate, secs, reserve = query_rows(
        conn, "SELECT rate_limit_requests, extract(epoch FROM rate_limit_interval),"
              " write_reserve FROM sequin_sf._syncs WHERE name = %s", (SYNC,))[0]
    return max(0.25, float(secs) / (rate * (1 - reserve)))


def soak_once(seed, seconds, fault_kinds, fault_rate=0.15, rate_limit=100000, kill_every=15.0,
              events=False):
    """One storm and its aftermath. Returns (seconds from the faults' end to a match,
    seconds from the write log's settling to a match, the storm's counts); fails, with
    the seed and the sync's state, when the tables do not match Salesforce within the
    bound."""
    print(f"soak run: seed {seed}, {seconds} s, faults {fault_kinds} at {fault_rate:.0%},"
          f" {'change events' if events else 'polling'}")
    pubsub = ("--pubsub-listen", "127.0.0.1:0", "--pubsub-keepalive-ms", "500") if events else ()
    emu = Emulator(*pubsub, "--seed", str(seed), "--generate", "Account=300,Contact=3000")
    if events:
        emu.control("PUT", "cdc", {"objects": ["Contact", "Account"]})
    cluster = Cluster()
    conn = cluster.connect()
    try:
        cluster.install(conn)
        create_emulator_credential(conn, emu)
        conn.execute(
            "SELECT sequin_sf.create_sync(%s, credential => 'emu',"
            " collections => ARRAY['Account', 'Contact'], rate_limit_requests => %s)",
            (SYNC, rate_limit))
        if events:
            # reconciled by a poll only once an hour: the stream must keep the tables
            conn.execute(
                "SELECT sequin_sf.alter_sync(%s, pubsub_endpoint => %s,"
                " reconcile_interval => '1 hour')",
                (SYNC, "http://" + emu.control("GET", "cdc")["pubsub"]))
        wait_backfilled(conn, SYNC, timeout=300)
        if events:
            wait_for(lambda: query_value(
                conn, "SELECT bool_and(change_source = 'events') FROM sequin_sf.sync_status"),
                what="the collections on change events")
        interval = poll_interval(conn)
        conn.close()
        storm = Storm(emu, cluster, seed, seconds, kill_every, events)
        storm.run(fault_kinds, fault_rate)
        faults_stopped = time.monotonic()
        quiet = faults_ended(emu, faults_stopped)
        conn = connect_when_up(cluster)
        wait_for(lambda: unsettled(conn) == 0, timeout=600, interval=0.5,
                 what="every write-log entry to settle")
        settled = time.monotonic()
        # the bound the read side is held to: READ_BOUND_SECONDS and one poll round
        bound = READ_BOUND_SECONDS + interval
        deadline = max(quiet, settled) + bound
        diff = None
        while True:
            diff = differences(emu, conn)
            now = time.monotonic()
            if not diff or now > deadline:
                break
            time.sleep(0.25)
        print(f"  storm: {storm.counts}; last faulted request ended"
              f" {quiet - faults_stopped:.1f} s and the write log settled"
              f" {settled - faults_stopped:.1f} s after the faults stopped")
        if diff:
            detail = {o: {k: (v[:5] if isinstance(v, list) else
                              dict(list(v.items())[:5]) if isinstance(v, dict) else v)
                          for k, v in d.items()} for o, d in diff.items()}
            pytest.fail(
                f"seed {seed}: {bound:.1f} s after the write log settled (and faults ended),"
                f" the tables still differ from Salesforce: {summary(diff)}\n"
                f"first differences: {detail}\n{sync_state(cluster)}")
        took = (now - faults_stopped, now - max(quiet, settled))
        print(f"  matched {took[0]:.1f} s after the faults stopped, {took[1]:.1f} s after"
              f" the last fault ended and the write log settled (bound {bound:.1f} s)")
        return took + (storm.counts,)
    finally:
        try:
            conn.close()
        except Exception:
            pass
        cluster.destroy()
        emu.stop()


# How long after the faults end (and the write log has settled) the tables may still
# differ from Salesforce, plus one poll interval.
READ_BOUND_SECONDS = 10.0
# The worker's request timeout (src/client.rs) and the emulator's "timeout" fault, which
# holds a request this long.
CLIENT_TIMEOUT, EMULATOR_HOLD = 60.0, 65.0


def faults_ended(emu, stopped):
    """When the last fault ended: when the faults were cleared, or, for a request the
    emulator was still holding then ("timeout": it counts as a long request), when the
    worker gave up on it (its 60 s request timeout, 5 s before the emulator lets go)."""
    held = False
    while emu.control("GET", "limits")["long_requests_running"]:
        held = True
        if time.monotonic() - stopped > EMULATOR_HOLD + 5:
            break
        time.sleep(0.2)
    if not held:
        return stopped
    return max(stopped, time.monotonic() - (EMULATOR_HOLD - CLIENT_TIMEOUT))


@pytest.mark.long
@pytest.mark.extension_only("kills the background worker, so Postgres crash-restarts (beside the database"
                            " test_sidecar kills sequin-sf mid-write under faults)")
def test_soak_tables_match_salesforce_after_fault_storms_with_crash_restarts():
    runs = int(os.environ.get("SOAK_RUNS", "10"))
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    base = int(os.environ.get("SOAK_SEED", str(random.randrange(1, 1_000_000))))
    kinds = os.environ.get("SOAK_FAULT_KINDS", ",".join(FAULT_KINDS)).split(",")
    rate = float(os.environ.get("SOAK_FAULT_RATE", "0.15"))
    kill_every = float(os.environ.get("SOAK_KILL_EVERY", "15"))
    events = os.environ.get("SOAK_EVENTS") == "1"
    results, failures = [], []
    for i in range(runs):
        try:
            results.append(soak_once(base + i, seconds, kinds, rate, kill_every=kill_every,
                                     events=events))
        except pytest.fail.Exception as exc:
            print(exc)
            failures.append(str(exc).splitlines()[0])
    print(f"soak: {runs} runs, {len(failures)} failed; seconds to match after the faults"
          f" stopped: {[round(r[0], 1) for r in results]}, after the write log settled:"
          f" {[round(r[1], 1) for r in results]}")
    assert not failures, failures


# ---------------------------------------------------------------------------------
# deterministic: one fault at a time, on the requests it must hit


@pytest.fixture
def small_org(start_emulator, cluster):
    """A synced org of 20 Contacts (polling), with the budget of the soak."""
    emu = start_emulator("--seed", "3", "--generate", "Account=5,Contact=20")
    conn = cluster.connect()
    cluster.install(conn)
    create_emulator_credential(conn, emu)
    conn.execute(
        "SELECT sequin_sf.create_sync(%s, credential => 'emu', collections => ARRAY['Contact'],"
        " rate_limit_requests => 100000)", (SYNC,))
    wait_backfilled(conn, SYNC)
    # its first poll round is done (and the org's Change Data Capture selection read)
    wait_for(lambda: query_value(conn, "SELECT last_poll_at FROM sequin_sf.sync_status"),
             what="a first poll")
    yield emu, cluster, conn
    conn.close()


def faults_used_up(emu):
    return not emu.control("GET", "faults")["faults"]


@pytest.mark.parametrize("faults,expire_tokens", [
    # the session expires and the login that renews it is refused once (401): a
    # refusal that passes, not a credential someone must fix
    ([{"kind": "invalid_session", "count": 1, "path_contains": "/oauth2/token"}], True),
    # one poll answered REQUEST_LIMIT_EXCEEDED while the org's usage (Sforce-Limit-Info)
    # shows its daily requests far from spent
    ([{"kind": "request_limit", "count": 1, "path_contains": "/composite"}], False),
    # seven polls in a row answered 503
    ([{"kind": "503", "count": 7, "path_contains": "/composite"}], False),
], ids=["login_refused_once", "request_limit_once", "seven_503s"])
def test_read_catches_up_within_the_bound_once_faults_end(small_org, faults, expire_tokens):
    emu, cluster, conn = small_org
    interval = poll_interval(conn)
    for f in faults:
        emu.control("POST", "faults", f)
    if expire_tokens:
        emu.control("POST", "expire_tokens")
    wait_for(lambda: faults_used_up(emu), timeout=180, interval=0.05,
             what="the worker to meet every fault")
    ended = time.monotonic()
    ids = sorted(sf_state(emu, "Contact", ["Id"]))
    emu.control("PATCH", f"records/Contact/{ids[0]}", {"Title": "after the faults"})
    emu.control("DELETE", f"records/Contact/{ids[1]}")

    def caught_up():
        return query_rows(conn, "SELECT id, title FROM salesforce.contact WHERE id = ANY(%s)"
                                " ORDER BY id", (ids[:2],)) == [(ids[0], "after the faults")]

    bound = READ_BOUND_SECONDS + interval
    try:
        wait_for(caught_up, timeout=bound, interval=0.1, what="the change and the delete")
    except AssertionError:
        pytest.fail(f"not caught up {bound:.1f} s after the faults ended\n{sync_state(cluster)}")
    print(f"caught up {time.monotonic() - ended:.1f} s after the faults ended (bound {bound:.1f} s)")
    if os.environ.get("SOAK_DEBUG"):
        print(sync_state(cluster))


def status(conn):
    return query_rows(
        conn,
        "SELECT behind, behind_since, lag, now() - behind_since, last_poll_at"
        " FROM sequin_sf.sync_status WHERE sync_name = %s", (SYNC,))[0]


def test_sync_status_says_why_and_since_when_a_collection_is_behind(small_org):
    emu, cluster, conn = small_org
    behind, since, lag, _, _ = status(conn)
    assert (behind, since) == (None, None) and lag < datetime.timedelta(seconds=30)

    # the read side retries after errors: said, with the first failure's time, and the
    # lag counts from the last moment the table was current, so it is at least that old
    emu.control("POST", "faults", {"kind": "503", "count": 5, "path_contains": "/composite"})
    behind, since, lag, for_how_long, _ = wait_for(
        lambda: (s := status(conn))[0] is not None and s, interval=0.05,
        what="sync_status to say the collection is behind")
    assert behind == "retrying after an error (see last_error)"
    assert since is not None and lag >= for_how_long
    first_failure = since
    wait_for(lambda: faults_used_up(emu), timeout=60, interval=0.1, what="the 503s")
    # still the run of failures that began first
    behind, since, _, _, _ = status(conn)
    assert behind is None or since == first_failure
    wait_for(lambda: status(conn)[0] is None, timeout=READ_BOUND_SECONDS + poll_interval(conn),
             interval=0.1, what="the collection current again")
    assert status(conn)[2] < datetime.timedelta(seconds=READ_BOUND_SECONDS)

    # no worker runs the sync: paused, its lock taken by a session of ours, resumed:
    # the worker started again waits for the lock, as one does while a worker of the
    # sync from before is still finishing (and nothing runs the sync meanwhile)
    # (beside the database sequin-sf stays connected, lets go of the paused sync's lock,
    # and tries it again each pass once the sync is resumed)
    conn.execute("SELECT sequin_sf.pause_sync(%s)", (SYNC,))
    if not SIDECAR_MODE:
        wait_for(lambda: worker_pid(conn, SYNC) is None, what="the paused sync's worker to stop")
    assert status(conn)[0] is None  # paused says it all
    holder = cluster.connect()
    try:
        wait_for(lambda: query_value(
            holder, "SELECT pg_try_advisory_lock(hashtext('sequin_sf sync'), hashtext(%s))",
            (SYNC,)), what="the sync's lock")
        conn.execute("SELECT sequin_sf.resume_sync(%s)", (SYNC,))
        if not SIDECAR_MODE:
            wait_for(lambda: worker_pid(conn, SYNC), what="a worker started for the sync")
        behind, since, lag, _, last_poll = status(conn)
        assert behind == "no worker runs this sync: it is being started again"
        assert since >= last_poll and lag >= datetime.timedelta(0)
    finally:
        holder.close()
    wait_for(lambda: status(conn)[0] is None, timeout=60, what="the collection current again")
