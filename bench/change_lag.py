"""Change-lag benchmark: time from a change in the emulator to the changed row in
Postgres, with 10 collections synced under a budget of 100,000 requests/day.

A change is made through the emulator's control API (as a Salesforce user would); the
clock stops when the new value is visible in the table. Prints median, p95 and the API
calls the sync spent per minute against its budget.

Then, in the same run, the same stream of changes (same objects, same records, same
pauses) again with the 10 objects selected for Change Data Capture: the sync subscribes
to the emulator's Pub/Sub API and polls only to reconcile. Prints both lags and the REST
calls per day each mode spends at its lag (--no-events skips this part).

--slow-neighbour-ms MS measures the polling lag once more, after a second sync
(another org: a second emulator answering every call MS late) joined the same
database: each sync has a worker of its own, so the first sync's lag should not move."""

import argparse
import random
import time

from common import (
    MODE,
    print_server,
    Cluster,
    Emulator,
    create_emulator_credential,
    median,
    percentile,
    query_rows,
    query_value,
    wait_backfilled,
)

# object -> (table, a writable text field, its column)
COLLECTIONS = {
    "Account": ("account", "Description", "description"),
    "Contact": ("contact", "Title", "title"),
    "Lead": ("lead", "Title", "title"),
    "Opportunity": ("opportunity", "Description", "description"),
    "Case": ("case", "Subject", "subject"),
    "Task": ("task", "Subject", "subject"),
    "Event": ("event", "Subject", "subject"),
    "Campaign": ("campaign", "Description", "description"),
    "Product2": ("product2", "Description", "description"),
    "Asset": ("asset", "Description", "description"),
}
BUDGET_PER_DAY = 100_000


def measure(conn, emu, ids, rng, changes, label):
    """Makes `changes` changes one at a time; returns their lags, the API calls spent
    meanwhile and the minutes it took. `label` goes into every value, so a run that
    repeats another's stream (same records, same pauses) never finds its values
    already there."""
    calls_before = emu.stats()["api_requests_total"]
    started = time.monotonic()
    lags = []
    objects = list(COLLECTIONS)
    for i in range(changes):
        obj = objects[i % len(objects)]
        table, field, column = COLLECTIONS[obj]
        rid = rng.choice(ids[obj])
        value = f"{label}-{i}-{rng.random():.6f}"
        t0 = time.monotonic()
        emu.control("PATCH", f"records/{obj}/{rid}", {field: value})
        while query_value(conn, f'SELECT "{column}" FROM salesforce."{table}"'
                          " WHERE id = %s", (rid,)) != value:
            if time.monotonic() - t0 > 120:
                raise AssertionError(f"change {i} on {obj} never arrived")
            time.sleep(0.01)
        lags.append(time.monotonic() - t0)
        # Wait a random time spanning several poll rounds before the next change, so
        # changes land at random points of the poll cycle (a short fixed-range pause
        # right after a change was seen would tie them to the cycle and bias the lag).
        time.sleep(rng.uniform(0.0, 6.0))
    minutes = (time.monotonic() - started) / 60
    return lags, emu.stats()["api_requests_total"] - calls_before, minutes


def deliveries(conn):
    """Change events the sync's stream delivered so far (sequin_sf._api_usage.events,
    what sequin_sf.org_limits shows as its share of DailyDeliveredPlatformEvents)."""
    return query_value(conn, "SELECT coalesce(sum(events), 0) FROM sequin_sf._api_usage"
                             " WHERE sync_name = 'lag'")


def measure_events(conn, emu, ids, changes, poll_lags, poll_calls_per_min):
    """The same change stream with every collection on Change Data Capture events."""
    emu.control("PUT", "cdc", {"objects": list(COLLECTIONS)})
    conn.execute("SELECT sequin_sf.alter_sync('lag', describe_interval => '5 seconds',"
                 " pubsub_endpoint => %s)", ("http://" + emu.control("GET", "cdc")["pubsub"],))
    deadline = time.monotonic() + 120
    while query_value(conn, "SELECT count(*) FROM sequin_sf.sync_status"
                      " WHERE change_source = 'events'") < len(COLLECTIONS) \
            or not (query_value(conn, "SELECT events_status FROM sequin_sf.syncs") or "") \
            .startswith("streaming"):
        if time.monotonic() > deadline:
            raise AssertionError("the collections did not move to change events")
        time.sleep(0.2)
    # the describe checks go back to their default pace, as in the polling run
    conn.execute("SELECT sequin_sf.alter_sync('lag', describe_interval => '10 minutes')")
    time.sleep(3)  # the reconciliation polls after the switch
    delivered_before = deliveries(conn)
    lags, calls, minutes = measure(conn, emu, ids, random.Random(5), changes, "events")
    delivered = deliveries(conn) - delivered_before
    per_day = calls / minutes * 1440
    # Calls on a schedule longer than this run (describe checks, selection reads,
    # reconciliation polls) may not fall inside it: count them from the settings.
    n = len(COLLECTIONS)
    scheduled = {
        "describe checks": n * 144,           # every 10 minutes per collection
        "CDC selection reads": 144,           # every describe interval
        "reconciliation polls": -(-n // 5) * 24,  # hourly, 5 collections per call
    }
    floor = sum(scheduled.values())
    print(f"events:  lag median: {median(lags):.3f} s  p95: {percentile(lags, 95):.3f} s"
          f"  max: {max(lags):.3f} s  (target median <= 0.3 s)")
    print(f"events:  API calls while measuring: {calls} in {minutes:.1f} min ="
          f" {per_day:,.0f}/day measured; on schedule at these settings:"
          f" {', '.join(f'{k} {v:,}' for k, v in scheduled.items())} = {floor:,}/day")
    print(f"events:  event deliveries counted by the sync while measuring: {delivered:,} for"
          f" {len(lags):,} changes = {delivered / minutes * 1440:,.0f}/day at this change rate"
          f" (the org's allocation: 50,000/day in Unlimited Edition)")
    events_day = max(per_day, floor)
    poll_day = poll_calls_per_min * 1440
    print(f"events vs polling: lag median {median(poll_lags) / max(median(lags), 1e-6):.0f}x lower;"
          f" REST calls per day {poll_day:,.0f} vs {events_day:,.0f} ="
          f" {poll_day / events_day:.0f}x fewer (target >= 20x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=60)
    ap.add_argument("--latency-ms", type=int, default=0,
                    help="added to every API call (real Salesforce: tens to hundreds of ms)")
    ap.add_argument("--no-events", action="store_true",
                    help="measure polling only, not Change Data Capture events")
    ap.add_argument("--slow-neighbour-ms", type=int, default=0,
                    help="then measure again beside a second sync whose org answers this late")
    args = ap.parse_args()

    generate = ",".join(f"{o}=200" for o in COLLECTIONS)
    emu = Emulator("--seed", "3", "--generate", generate, "--latency-ms", str(args.latency_ms),
                   "--pubsub-listen", "127.0.0.1:0")
    cluster = Cluster()
    try:
        conn = cluster.connect()
        print_server(conn)
        # SEQUIN_SF_MODE=sidecar: sequin-sf beside a Postgres without our library
        cluster.install(conn)
        print(f"mode: {MODE}")
        create_emulator_credential(conn, emu)
        conn.execute(
            "SELECT sequin_sf.create_sync('lag', credential => 'emu', collections => %s,"
            " rate_limit_requests => %s, rate_limit_interval => '24 hours')",
            (list(COLLECTIONS), BUDGET_PER_DAY),
        )
        wait_backfilled(conn, "lag", timeout=600)
        ids = {o: [r[0] for r in query_rows(conn, f"SELECT id FROM salesforce.{t[0]}")]
               for o, t in COLLECTIONS.items()}
        time.sleep(3)  # let the first polling rounds settle

        lags, calls, minutes = measure(conn, emu, ids, random.Random(5), args.changes, "polling")
        print(f"changes: {len(lags)} across {len(COLLECTIONS)} collections")
        print(f"polling: lag median: {median(lags):.2f} s  p95: {percentile(lags, 95):.2f} s"
              f"  max: {max(lags):.2f} s  (target median <= 2 s)")
        print(f"polling: API calls while measuring: {calls} in {minutes:.1f} min ="
              f" {calls / minutes:.1f}/min = {calls / minutes * 1440:,.0f}/day;"
              f" budget {BUDGET_PER_DAY / 1440:.1f}/min")
        print("reference (not measured here): Sequin documents ~12 s at this quota;"
              " Heroku Connect polls every 10 min by default")
        if not args.no_events:
            measure_events(conn, emu, ids, args.changes, lags, calls / minutes)
        if args.slow_neighbour_ms:
            slow = Emulator("--seed", "4", "--generate", "Account=200,Contact=200",
                            "--latency-ms", str(args.slow_neighbour_ms))
            try:
                create_emulator_credential(conn, slow, name="slow")
                conn.execute(
                    "SELECT sequin_sf.create_sync('slow', credential => 'slow',"
                    " collections => ARRAY['Account', 'Contact'], schema_name => 'slow_org',"
                    " rate_limit_requests => %s)", (BUDGET_PER_DAY,))
                conn.execute("SELECT sequin_sf.alter_sync('lag', change_events => 'off')")
                beside, _, _ = measure(conn, emu, ids, random.Random(5), args.changes, "beside")
                slow_calls = slow.stats()["api_requests_total"]
            finally:
                slow.stop()
            print(f"beside a sync whose org answers {args.slow_neighbour_ms} ms late"
                  f" ({slow_calls} slow calls meanwhile): lag median {median(beside):.2f} s"
                  f"  p95: {percentile(beside, 95):.2f} s; median ratio to alone:"
                  f" {median(beside) / median(lags):.2f} (polling)")
    finally:
        cluster.destroy()
        emu.stop()


if __name__ == "__main__":
    main()
