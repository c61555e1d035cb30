#!/usr/bin/env python3
"""Drafts the function part of an upgrade script from two full install scripts.

    scripts/sql-upgrade-draft.py OLD.sql NEW.sql > draft.sql

OLD.sql is the previous release's install script (kept under sql/releases/), NEW.sql the
one `cargo pgrx install` writes for this release. Prints, for every function whose
definition changed or is new, a CREATE OR REPLACE of the new definition (preceded by a
DROP when its return type or argument names changed, which CREATE OR REPLACE cannot do),
and a DROP for every function that is gone. Tables, views, grants and data changes are
not drafted: write those by hand above the draft. Read the result before committing it.
"""

import re
import sys


def statements(sql):
    """Splits SQL text into statements, respecting quotes, dollar quotes and comments."""
    out, buf, i, n = [], [], 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            buf.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            buf.append(sql[i:j])
            i = j
        elif c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and sql.startswith("''", j):
                    j += 2
                elif sql[j] == "'":
                    break
                else:
                    j += 1
            buf.append(sql[i:j + 1])
            i = j + 1
        elif c == "$" and (m := re.match(r"\$[A-Za-z_]*\$", sql[i:])):
            tag = m.group(0)
            j = sql.find(tag, i + len(tag))
            j = n if j < 0 else j + len(tag)
            buf.append(sql[i:j])
            i = j
        elif c == ";":
            out.append("".join(buf).strip() + ";")
            buf, i = [], i + 1
        else:
            buf.append(c)
            i += 1
    if "".join(buf).strip():
        out.append("".join(buf).strip())
    return out


# the extension's schema (sequin_sf.control), where unqualified names are created
SCHEMA = "sequin_sf"

FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w.\"]+)\s*\(", re.IGNORECASE
)


def strip_comments(stmt):
    """The statement without the comments that precede it (pgrx's markers, the file's
    notes); comments inside a function body are part of the definition."""
    lines = stmt.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith(("--", "/*"))):
        first = lines.pop(0)
        if first.lstrip().startswith("/*") and "*/" not in first:
            while lines and "*/" not in lines.pop(0):
                pass
    return "\n".join(lines).strip()


def functions(sql):
    """name(arg types) -> (definition, header) for every CREATE FUNCTION statement."""
    found = {}
    for stmt in statements(sql):
        body = strip_comments(stmt)
        m = FUNCTION.search(body)
        if not m or not body.upper().startswith("CREATE"):
            continue
        name = m.group(1).replace('"', "")
        if "." not in name:  # pgrx writes Rust functions unqualified
            name = f"{SCHEMA}.{name}"
        depth, j = 1, m.end()
        while depth and j < len(body):
            depth += {"(": 1, ")": -1}.get(body[j], 0)
            j += 1
        args = re.sub(r"/\*.*?\*/", "", body[m.end():j - 1], flags=re.DOTALL)
        args = re.sub(r"--[^\n]*", "", args)
        found[f"{name}({normalise(args)})"] = (body, args)
    return found


def normalise(args):
    """The argument types only (what identifies a function), lower-cased."""
    types = []
    for arg in split_args(args):
        arg = re.sub(r"\s+DEFAULT\s+.*$", "", arg, flags=re.IGNORECASE | re.DOTALL).strip()
        parts = arg.replace('"', "").split()
        if parts and parts[0].upper() in ("IN", "OUT", "INOUT", "VARIADIC"):
            if parts[0].upper() == "OUT":
                continue
            parts = parts[1:]
        types.append(" ".join(parts[1:] if len(parts) > 1 else parts).lower())
    return ", ".join(types)


def split_args(args):
    out, depth, cur = [], 0, []
    for ch in args:
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur))
    return out


def main(old_path, new_path):
    old = functions(open(old_path).read())
    new = functions(open(new_path).read())
    print("-- drafted by scripts/sql-upgrade-draft.py; reviewed by hand")
    for sig in sorted(set(old) - set(new)):
        print(f"DROP FUNCTION IF EXISTS {sig};")
    for sig, (body, args) in new.items():
        if sig in old and old[sig][0] == body:
            continue
        if sig in old and old[sig][1] != args:
            print(f"DROP FUNCTION {sig};")
        qualified = sig.split("(", 1)[0]
        print(FUNCTION.sub(lambda m: f"CREATE OR REPLACE FUNCTION {qualified}(", body, count=1))
        print()


if __name__ == "__main__":
    main(*sys.argv[1:3])
