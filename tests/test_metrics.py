"""sequin_sf.metrics_text() scraped from a real sync, as Prometheus (or sql_exporter)
would, and parsed with prometheus_client's text parser: the exposition is well formed,
every metric the docs list is there with its labels, and the values move as the sync
works: a write to a synced table shows as new, then as succeeded; a pause shows; the
API requests grow. A non-superuser role without any grant reads the same metrics."""

import os
import re

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import query_value, synced_org, wait_for

SYNC = "mx"
OBJECTS = ["Account", "Contact"]

PER_COLLECTION = ["sequin_sf_lag_seconds", "sequin_sf_behind", "sequin_sf_backfilling",
                  "sequin_sf_capture_enabled", "sequin_sf_rows",
                  "sequin_sf_backfill_rows_done", "sequin_sf_backfill_rows_total"]
PER_SYNC = ["sequin_sf_paused", "sequin_sf_api_requests_24h",
            "sequin_sf_write_oldest_queued_seconds", "sequin_sf_events_retained"]
API_LIMIT = 77_777


@pytest.fixture(scope="module")
def env():
    with synced_org(("--seed", "5", "--generate", "Account=5,Contact=20",
                     "--api-limit", str(API_LIMIT)), SYNC, OBJECTS) as org:
        yield org


def scrape(conn):
    """{(name, sorted label items): value} and {name: type} from one scrape."""
    text = query_value(conn, "SELECT sequin_sf.metrics_text()")
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"sample twice: {key}"
            samples[key] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted({"sync": SYNC, **labels}.items()))))


def written(samples, state):
    return value(samples, "sequin_sf_write_log_entries", state=state)


def test_a_scrape_parses_and_has_every_metric(env):
    _, _, conn = env
    # a live collection has a lag once it caught up
    wait_for(lambda: value(scrape(conn)[0], "sequin_sf_lag_seconds", collection="Contact") is not None,
             timeout=120, what="Contact's lag")
    samples, types = scrape(conn)
    assert set(types) >= set(PER_COLLECTION + PER_SYNC + ["sequin_sf_write_log_entries"])
    assert set(types.values()) == {"gauge"}
    for obj in OBJECTS:
        for name in PER_COLLECTION:
            assert value(samples, name, collection=obj) is not None, (name, obj)
        assert value(samples, "sequin_sf_backfilling", collection=obj) == 0
        assert value(samples, "sequin_sf_capture_enabled", collection=obj) == 1
        assert value(samples, "sequin_sf_lag_seconds", collection=obj) >= 0
    assert value(samples, "sequin_sf_backfill_rows_done", collection="Contact") == 20
    for name in PER_SYNC:
        assert value(samples, name) is not None, name
    for state in ("new", "pending", "succeeded", "failed"):
        assert written(samples, state) is not None, state
    assert value(samples, "sequin_sf_paused") == 0
    assert value(samples, "sequin_sf_api_requests_24h") > 0
    # the org's allocations as /limits reported them, and the sync's share where counted
    assert value(samples, "sequin_sf_org_limit_max", allocation="DailyApiRequests") == API_LIMIT
    assert 0 < value(samples, "sequin_sf_org_limit_remaining", allocation="DailyApiRequests") < API_LIMIT
    assert value(samples, "sequin_sf_org_limit_sync_used_24h", allocation="DailyApiRequests") > 0
    assert value(samples, "sequin_sf_org_limit_sync_used_24h", allocation="DailyDeliveredPlatformEvents") == 0
    assert value(samples, "sequin_sf_org_limit_max", allocation="DailyBulkV2QueryJobs") == 10_000
    # the live sync's worker holds its lock: not behind once it runs
    wait_for(lambda: all(value(scrape(conn)[0], "sequin_sf_behind", collection=o) == 0 for o in OBJECTS),
             timeout=60, what="the sync not behind")


def test_a_write_moves_the_write_log_metrics(env):
    _, _, conn = env
    before, _ = scrape(conn)
    succeeded = written(before, "succeeded")
    api = value(before, "sequin_sf_api_requests_24h")
    conn.execute("UPDATE salesforce.contact SET title = 'Metrics' WHERE id = (SELECT min(id) FROM salesforce.contact)")
    conn.execute("SELECT * FROM sequin_sf.await_writes('120 seconds')")
    after, _ = scrape(conn)
    assert written(after, "succeeded") == succeeded + 1
    assert written(after, "new") == 0 and written(after, "pending") == 0
    assert value(after, "sequin_sf_write_oldest_queued_seconds") == 0

    # a write that waits while the sync is paused is queued, and ages
    conn.execute(f"SELECT sequin_sf.pause_sync('{SYNC}')")
    try:
        conn.execute("UPDATE salesforce.contact SET title = 'Paused' WHERE id = (SELECT max(id) FROM salesforce.contact)")
        paused, _ = scrape(conn)
        assert value(paused, "sequin_sf_paused") == 1
        assert written(paused, "new") == 1
        wait_for(lambda: value(scrape(conn)[0], "sequin_sf_write_oldest_queued_seconds") > 1,
                 timeout=30, what="the queued write to age")
    finally:
        conn.execute(f"SELECT sequin_sf.resume_sync('{SYNC}')")
    conn.execute("SELECT * FROM sequin_sf.await_writes('120 seconds')")
    done, _ = scrape(conn)
    assert written(done, "succeeded") == succeeded + 2
    assert written(done, "new") == 0
    assert value(done, "sequin_sf_paused") == 0
    assert value(done, "sequin_sf_api_requests_24h") > api


def test_a_role_without_grants_reads_the_same_metrics(env):
    _, cluster, conn = env
    conn.execute("DROP ROLE IF EXISTS scraper")
    conn.execute("CREATE ROLE scraper LOGIN")
    with psycopg.connect(cluster.dsn(user="scraper"), autocommit=True) as scraper:
        theirs, _ = scrape(scraper)
        ours, _ = scrape(conn)
        # the same series (values of times and API usage may have moved in between)
        assert set(theirs) == set(ours)
        for key in theirs:
            if key[0] in ("sequin_sf_behind", "sequin_sf_write_log_entries", "sequin_sf_paused"):
                assert theirs[key] == ours[key], key
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            scraper.execute("SELECT count(*) FROM salesforce._sync_write_log")


def test_the_documented_sql_exporter_collector_gives_every_metric(env):
    """docs/sql_exporter/sequin_sf.collector.yml: one entry per metric of the view, each
    query runs for a role without grants and gives the metric's series."""
    _, cluster, conn = env
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "sql_exporter", "sequin_sf.collector.yml")
    with open(path) as f:
        text = f.read()
    entries = re.findall(
        r"- metric_name: (\S+)\n    type: (\S+)\n    help: .*\n    key_labels: \[(.*)\]\n"
        r"    values: \[value\]\n    query: \|\n((?:      .*\n)+)", text)
    _, types = scrape(conn)
    assert sorted(e[0] for e in entries) == sorted(types)
    conn.execute("DROP ROLE IF EXISTS collector")
    conn.execute("CREATE ROLE collector LOGIN")
    with psycopg.connect(cluster.dsn(user="collector"), autocommit=True) as collector:
        samples, _ = scrape(collector)
        for name, type_, labels, query in entries:
            assert type_ == types[name]
            keys = [k.strip() for k in labels.split(",")]
            cur = collector.execute(query)
            assert [d.name for d in cur.description] == keys + ["value"]
            got = {tuple(sorted(zip(keys, r[:-1]))) for r in cur.fetchall()}
            assert got == {k[1] for k in samples if k[0] == name}, name


def test_the_orgs_api_usage_is_what_salesforce_reported(env):
    """The org's usage and limit come from the Sforce-Limit-Info of the sync's responses:
    the limit the org was given, and a usage above 0 and no higher than the org's count
    now. No sample before the sync's first response (so not in PER_SYNC)."""
    emu, _, conn = env
    wait_for(lambda: value(scrape(conn)[0], "sequin_sf_org_api_requests_limit") is not None,
             timeout=60, what="the org's usage recorded")
    samples, _ = scrape(conn)
    assert value(samples, "sequin_sf_org_api_requests_limit") == API_LIMIT
    used = value(samples, "sequin_sf_org_api_requests_used")
    assert 0 < used <= emu.control("GET", "limits")["api_used"]
    row = query_value(conn, "SELECT row(org_api_requests_used, org_api_requests_limit,"
                            " org_api_usage_at IS NOT NULL)::text FROM sequin_sf.syncs"
                            " WHERE name = %s", (SYNC,))
    assert row.endswith(f",{API_LIMIT},t)")


@pytest.mark.extension_only("the database's worker serves the endpoint; sequin-sf has --listen")
def test_the_worker_serves_metrics_over_http_when_an_address_is_set(start_emulator):
    """sequin_sf.metrics_listen: off by default; a bare port serves /metrics (the same
    exposition, with the reading's age) and /healthz on loopback."""
    import urllib.error
    import urllib.request

    from harness import Cluster, create_emulator_credential, free_port, wait_backfilled

    default = Cluster()
    try:
        conn = default.connect()
        assert query_value(conn, "SHOW sequin_sf.metrics_listen") == ""
        conn.close()
    finally:
        default.destroy()

    port = free_port()
    emu = start_emulator("--seed", "5", "--generate", "Account=5,Contact=20")
    cluster = Cluster(settings={"sequin_sf.metrics_listen": f"'{port}'"})
    conn = cluster.connect()
    try:
        cluster.install(conn)
        create_emulator_credential(conn, emu)
        conn.execute("SELECT sequin_sf.create_sync('web', credential => 'emu',"
                      " collections => ARRAY['Contact'])")
        wait_backfilled(conn, "web")

        def get(path):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        def lag():
            status, text = get("/metrics")
            if status != 200:
                return None
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return families, [s for s in families["sequin_sf_lag_seconds"].samples
                              if s.labels == {"sync": "web", "collection": "Contact"}]

        families, contact = wait_for(lambda: (lambda r: r if r and r[1] else None)(lag()),
                                     timeout=60, what="Contact's lag over HTTP")
        assert contact[0].value >= 0
        assert set(families) >= set(PER_COLLECTION + PER_SYNC)
        age = families["sequin_sf_worker_metrics_age_seconds"].samples[0].value
        assert 0 <= age < 30
        assert get("/healthz") == (200, "ok\n")
        assert get("/other")[0] == 404
    finally:
        conn.close()
        cluster.destroy()
