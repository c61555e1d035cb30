#!/usr/bin/env bash
# Starts or stops a throwaway Postgres cluster with sequin_sf preloaded.
# Postgres refuses to run as root, so the cluster belongs to the `postgres` user.
#   scripts/pg-cluster.sh start DIR PORT [DATABASE [NAME=VALUE ...]]
#   scripts/pg-cluster.sh stop DIR
# NAME=VALUE settings are appended to postgresql.conf when the cluster is created, after
# the defaults below, so they override them (shared_preload_libraries='' gives a plain
# Postgres without sequin_sf).
set -euo pipefail
# PG_BIN selects the installation (`make ... PG=N` sets /opt/sequin-sf-pg/N/bin);
# Debian's 15 when run by hand. INITDB_ARGS are added to initdb's command line.
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?start|stop}; dir=${2:?data directory}

as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres "$@"; fi; }

case "$cmd" in
  start)
    port=${3:?port}; db=${4:-postgres}; shift $(( $# < 4 ? $# : 4 ))
    mkdir -p "$dir"; chown postgres:postgres "$dir"; chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      # shellcheck disable=SC2086 # INITDB_ARGS is a list of words
      as_pg "$BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 ${INITDB_ARGS:-} >/dev/null
      cat >> "$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'sequin_sf'
sequin_sf.database_name = '$db'
wal_level = logical
max_wal_senders = 4
max_replication_slots = 4
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = info
CONF
      for setting in "$@"; do
        printf '%s = %s\n' "${setting%%=*}" "${setting#*=}" >> "$dir/postgresql.conf"
      done
    fi
    as_pg "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
    if [ "$db" != postgres ]; then
      as_pg "$BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
        as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
    ;;
  stop)
    [ -f "$dir/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    ;;
  *) echo "usage: $0 start DIR PORT [DATABASE [NAME=VALUE ...]] | stop DIR" >&2; exit 2 ;;
esac
