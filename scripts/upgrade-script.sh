#!/usr/bin/env bash
# Rebuilds the function part of an upgrade script from two install scripts, keeping
# its hand-written head (tables, data) and tail (what must be redone on objects the
# old release created). The head ends at the line "-- functions (drafted)", the tail
# starts at "-- redone (by hand)".
#   scripts/upgrade-script.sh sql/releases/sequin_sf--OLD.sql NEW-install.sql sql/sequin_sf--OLD--NEW.sql
set -euo pipefail
old=$1; new=$2; target=$3
here=$(dirname "$0")
head=$(sed '/^-- functions (drafted)$/,$d' "$target")
tail=$(sed -n '/^-- redone (by hand)$/,$p' "$target")
{
  printf '%s\n-- functions (drafted)\n' "$head"
  python3 "$here/sql-upgrade-draft.py" "$old" "$new" | sed 1d
  printf '%s\n' "$tail"
} > "$target.tmp"
mv "$target.tmp" "$target"
