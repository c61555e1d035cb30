#!/usr/bin/env bash
# `make demo`: a local Salesforce (the emulator, with generated demo data) mirrored into
# a local Postgres by sequin_sf. `scripts/demo.sh stop` stops both.
# `make demo-sidecar` (SEQUIN_SF_DEMO_SIDECAR=1): the same sync run by `sequin-sf` beside
# a Postgres that loads no library of ours, as a role with CREATE on the database only:
# sequin-sf installs the objects itself (no CREATE EXTENSION).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${SEQUIN_SF_DEMO_DIR:-/tmp/sequin-sf-demo}

# The first free TCP port on 127.0.0.1 from $1 upwards (another Postgres may hold 5499).
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

SIDECAR=${SEQUIN_SF_DEMO_SIDECAR:-0}

stop() {
  if [ -f "$STATE/sidecar.pid" ]; then kill "$(cat "$STATE/sidecar.pid")" 2>/dev/null || true; rm -f "$STATE/sidecar.pid"; fi
  scripts/pg-cluster.sh stop "$STATE/pg" || true
  if [ -f "$STATE/emulator.pid" ]; then kill "$(cat "$STATE/emulator.pid")" 2>/dev/null || true; rm -f "$STATE/emulator.pid"; fi
}

if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi

stop
rm -rf "$STATE"; mkdir -p "$STATE"; chmod 755 "$STATE"
PGPORT=${DEMO_PGPORT:-$(free_port 5499)}
EMU_PORT=${DEMO_EMULATOR_PORT:-$(free_port 8899)}
# `make demo PG=N` sets PG_BIN to that major's binaries
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PG_BIN
PSQL=(sudo -u postgres "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres)

echo "==> starting the Salesforce emulator on 127.0.0.1:$EMU_PORT with demo data"
nohup target/release/sf-emulator --listen "127.0.0.1:$EMU_PORT" --seed 42 \
  --generate Account=2000,Contact=20000,Opportunity=8000 \
  --pubsub-listen 127.0.0.1:0 --cdc-objects Contact >"$STATE/emulator.log" 2>&1 &
echo $! >"$STATE/emulator.pid"
for _ in $(seq 1 300); do grep -q "listening on" "$STATE/emulator.log" && break; sleep 0.1; done
grep -q "listening on" "$STATE/emulator.log" || { cat "$STATE/emulator.log"; exit 1; }
for _ in $(seq 1 100); do grep -q "pubsub listening on" "$STATE/emulator.log" && break; sleep 0.1; done
EMU_URL="http://127.0.0.1:$EMU_PORT"
# Contact is selected for Change Data Capture (as in Setup): its changes come over the
# emulator's Pub/Sub API; Account and Opportunity are polled
PUBSUB_URL="http://$(sed -n 's/^pubsub listening on //p' "$STATE/emulator.log" | head -1)"

if [ "$SIDECAR" = 1 ]; then
  echo "==> starting $("$PG_BIN/postgres" --version) on 127.0.0.1:$PGPORT without sequin_sf preloaded"
  scripts/pg-cluster.sh start "$STATE/pg" "$PGPORT" postgres "shared_preload_libraries=''"
else
  echo "==> starting $("$PG_BIN/postgres" --version) on 127.0.0.1:$PGPORT with sequin_sf preloaded"
  scripts/pg-cluster.sh start "$STATE/pg" "$PGPORT"
fi

SYNC_SQL="SELECT sequin_sf.create_sync('demo', credential => 'demo',
       collections => ARRAY['Account','Contact','Opportunity'],
       rate_limit_requests => 100000);
SELECT sequin_sf.alter_sync('demo', pubsub_endpoint => '$PUBSUB_URL');"

if [ "$SIDECAR" = 1 ]; then
  # what a managed Postgres gives: a role with CREATE on the database, no superuser,
  # no library of ours on the server
  OWNER_DSN="host=127.0.0.1 port=$PGPORT user=demo_owner dbname=postgres"
  echo "==> a role with CREATE on the database only (demo_owner); sequin-sf beside the database as that role"
  "${PSQL[@]}" -c "CREATE ROLE demo_owner LOGIN" -c "GRANT CREATE ON DATABASE postgres TO demo_owner"
  target/release/sequin-sf key create "$STATE/sidecar.key" >/dev/null
  echo "    (log: $STATE/sidecar.log, /healthz and /metrics on 127.0.0.1:$((PGPORT + 1)))"
  nohup target/release/sequin-sf --database-url "$OWNER_DSN" \
    --key-file "$STATE/sidecar.key" --listen "127.0.0.1:$((PGPORT + 1))" >"$STATE/sidecar.log" 2>&1 &
  echo $! >"$STATE/sidecar.pid"
  for _ in $(seq 1 300); do
    [ "$("${PSQL[@]}" -tA -c "SELECT to_regclass('sequin_sf._release') IS NOT NULL")" = t ] && break
    sleep 0.1
  done
  echo "==> sequin-sf installed its objects (plain SQL and PL/pgSQL); a credential sealed with its key"
  SEQUIN_SF_CLIENT_SECRET=emulator-secret SEQUIN_SF_REFRESH_TOKEN=emulator-refresh-token \
    target/release/sequin-sf credential create demo --kind refresh_token --login-url "$EMU_URL" \
    --client-id sequin-emulator --database-url "$OWNER_DSN" --key-file "$STATE/sidecar.key"
  echo "==> a sync of Account, Contact, Opportunity (as demo_owner)"
  sudo -u postgres "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U demo_owner -d postgres <<<"$SYNC_SQL"
else
  echo "==> CREATE EXTENSION, a credential and a sync of Account, Contact, Opportunity"
  "${PSQL[@]}" <<SQL
CREATE EXTENSION sequin_sf;
SELECT sequin_sf.create_credential('demo', kind => 'refresh_token', login_url => '$EMU_URL',
       client_id => 'sequin-emulator', client_secret => 'emulator-secret',
       refresh_token => 'emulator-refresh-token');
$SYNC_SQL
SQL
fi

echo "==> backfilling (progress from sequin_sf.sync_status)"
for _ in $(seq 1 600); do
  line=$("${PSQL[@]}" -tA -F' ' -c "SELECT string_agg(collection || ' ' || state || ' ' ||
           coalesce(rows_done::text,'0') || '/' || coalesce(rows_total::text,'?'), ', ' ORDER BY collection)
           FROM sequin_sf.sync_status WHERE sync_name = 'demo'")
  printf '\r    %s          ' "$line"
  pending=$("${PSQL[@]}" -tA -c "SELECT count(*) FROM sequin_sf.sync_status WHERE sync_name = 'demo' AND state <> 'live'")
  [ "$pending" = 0 ] && break
  sleep 0.5
done
echo
[ "$pending" = 0 ] || { echo "backfill did not finish; see $STATE/pg/server.log"; exit 1; }

for _ in $(seq 1 100); do
  [ "$("${PSQL[@]}" -tA -c "SELECT change_source FROM sequin_sf.sync_status WHERE collection = 'Contact'")" = events ] && break
  sleep 0.1
done

echo "==> contacts with their accounts and open opportunities (a real join over synced rows)"
"${PSQL[@]}" <<'SQL'
SELECT c.first_name || ' ' || c.last_name AS contact, a.name AS account,
       count(o.id) AS open_opps, sum(o.amount) AS open_amount
  FROM salesforce.contact c
  JOIN salesforce.account a ON a.id = c.account_id
  JOIN salesforce.opportunity o ON o.account_id = a.id AND NOT o.is_closed
 GROUP BY 1, 2
 ORDER BY open_amount DESC NULLS LAST
 LIMIT 10;
SELECT collection, state, rows_done, rows_total, change_source, api_requests_24h
  FROM sequin_sf.sync_status ORDER BY 1;
SQL

cat <<EOF

The demo is running:
  psql:      sudo -u postgres psql -h 127.0.0.1 -p $PGPORT -U postgres
  tables:    salesforce.account, salesforce.contact, salesforce.opportunity; events in salesforce._sync_events
  emulator:  $EMU_URL  (change data: curl -X PATCH $EMU_URL/__emulator/records/Contact/<id> -d '{"Title":"CTO"}')
  events:    Contact changes arrive as Change Data Capture events ($PUBSUB_URL); see
             SELECT collection, change_source, change_source_note FROM sequin_sf.sync_status;
  stop:      make demo-stop

To sync a real org instead, create a Connected App in Salesforce (OAuth enabled, scopes
"api" and "refresh_token"), then use its consumer key and secret:
EOF
if [ "$SIDECAR" = 1 ]; then
  cat <<EOF
  SEQUIN_SF_PRIVATE_KEY_FILE=key.pem target/release/sequin-sf credential create acme --kind jwt_bearer \\
      --login-url https://login.salesforce.com --client-id '<consumer key>' --username integration@acme.com \\
      --database-url '$OWNER_DSN' --key-file $STATE/sidecar.key
  SELECT sequin_sf.create_sync('acme', credential => 'acme', collections => ARRAY['Contact','Account']);
EOF
else
  cat <<'EOF'
  SELECT sequin_sf.create_credential('acme', kind => 'jwt_bearer', login_url => 'https://login.salesforce.com',
         client_id => '<consumer key>', username => 'integration@acme.com', private_key => '<PEM>');
  -- or kind => 'refresh_token' (a token from the web flow), or 'client_credentials' on a My Domain URL
  SELECT sequin_sf.create_sync('acme', credential => 'acme', collections => ARRAY['Contact','Account']);
EOF
fi
