#!/usr/bin/env python3
"""Validate benchmarks/data/queries.jsonl (labelled retrieval queries, issue #16).

Run from anywhere (standard library only):

    python3 benchmarks/data/check_queries.py                  # validate and print counts
    python3 benchmarks/data/check_queries.py --assign-splits  # (re)draw fit/holdout, seed 16, then validate

Checks: valid JSON per line; required fields and allowed values; no unknown fields; ids unique and
shaped <pub|demo>-<alert|q|none>-NNN to match collection and kind; query texts unique (case and
whitespace folded); gold slugs unique per query and present in their collection's runbook file;
kind "none" if and only if gold_slugs is empty.  Prints counts per (collection, kind, split) and how
many runbooks of each collection are gold at least once.  Exits 1 on any error.

Holdout draw (--assign-splits): queries are grouped by (collection, kind, hardness), hardness being
"two-gold" (more than one gold slug), "near" (note starts with "near-neighbour:" or "near-miss:") or
"plain".  Within each group, in id order, random.Random(16) shuffles the queries and the first
round(30 % of the group) become "holdout", the rest "fit".  Stratifying on hardness guarantees the
holdout keeps its share of near-neighbour and two-gold cases.  The draw depends only on the ids and
the labels, so rerunning it on an unchanged file changes nothing.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
QUERIES = HERE / "queries.jsonl"
PUBLIC_DIR = (PROJECT_ROOT / ".." / "shared" / "data" / "runbooks").resolve()
DEMO_FILE = PROJECT_ROOT / "runbooks" / "demo_data" / "demo_runbooks.jsonl"

SEED = 16
HOLDOUT_SHARE = 0.30

REQUIRED = ("id", "collection", "kind", "query", "gold_slugs", "split")
OPTIONAL = ("note",)
COLLECTIONS = ("public", "demo")
KINDS = ("alert", "question", "none")
SPLITS = ("fit", "holdout")
ID_PREFIX = {"public": "pub", "demo": "demo"}
ID_KIND = {"alert": "alert", "question": "q", "none": "none"}
ID_RE = re.compile(r"^(pub|demo)-(alert|q|none)-(\d{3,})$")


def load_slugs(files: list[Path]) -> dict[str, str]:
    """slug -> title for every runbook in the given JSONL files."""
    slugs: dict[str, str] = {}
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    slugs[row["slug"]] = row.get("title", "")
    return slugs


def read_rows(path: Path, errors: list[str]) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                errors.append(f"line {number}: empty line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {number}: invalid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                errors.append(f"line {number}: not a JSON object")
                continue
            row["_line"] = number
            rows.append(row)
    return rows


def hardness(row: dict) -> str:
    if len(row.get("gold_slugs") or []) > 1:
        return "two-gold"
    note = str(row.get("note", ""))
    if note.startswith(("near-neighbour:", "near-miss:")):
        return "near"
    return "plain"


def assign_splits(rows: list[dict]) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["collection"], row["kind"], hardness(row))].append(row)
    rng = random.Random(SEED)
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda r: r["id"])
        rng.shuffle(members)
        n_holdout = round(HOLDOUT_SHARE * len(members))
        for i, row in enumerate(members):
            row["split"] = "holdout" if i < n_holdout else "fit"


def write_rows(path: Path, rows: list[dict]) -> None:
    order = (*REQUIRED, *OPTIONAL)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            out = {k: row[k] for k in order if k in row}
            handle.write(json.dumps(out, ensure_ascii=False) + "\n")


def validate(rows: list[dict], slugs: dict[str, dict[str, str] | None], errors: list[str], warnings: list[str]) -> None:
    seen_ids: dict[str, int] = {}
    seen_queries: dict[str, int] = {}
    for row in rows:
        where = f"line {row['_line']} ({row.get('id', '?')})"
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            errors.append(f"{where}: missing field(s) {', '.join(missing)}")
            continue
        unknown = [k for k in row if k not in REQUIRED and k not in OPTIONAL and k != "_line"]
        if unknown:
            errors.append(f"{where}: unknown field(s) {', '.join(unknown)}")
        coll, kind, split, gold = row["collection"], row["kind"], row["split"], row["gold_slugs"]
        if coll not in COLLECTIONS:
            errors.append(f"{where}: collection {coll!r} not in {COLLECTIONS}")
        if kind not in KINDS:
            errors.append(f"{where}: kind {kind!r} not in {KINDS}")
        if split not in SPLITS:
            errors.append(f"{where}: split {split!r} not in {SPLITS}")
        if not isinstance(row["query"], str) or not row["query"].strip():
            errors.append(f"{where}: query must be a non-empty string")
        if "note" in row and not isinstance(row["note"], str):
            errors.append(f"{where}: note must be a string")
        if not isinstance(gold, list) or not all(isinstance(s, str) and s for s in gold):
            errors.append(f"{where}: gold_slugs must be a list of non-empty strings")
            continue
        # id
        rid = row["id"]
        match = ID_RE.match(rid) if isinstance(rid, str) else None
        if not match:
            errors.append(f"{where}: id {rid!r} not shaped <pub|demo>-<alert|q|none>-NNN")
        elif coll in ID_PREFIX and kind in ID_KIND and (match[1], match[2]) != (ID_PREFIX[coll], ID_KIND[kind]):
            errors.append(f"{where}: id prefix does not match collection {coll!r} / kind {kind!r}")
        if rid in seen_ids:
            errors.append(f"{where}: duplicate id (first on line {seen_ids[rid]})")
        else:
            seen_ids[rid] = row["_line"]
        # query text
        if isinstance(row["query"], str):
            key = " ".join(row["query"].casefold().split())
            if key in seen_queries:
                errors.append(f"{where}: duplicate query text (first on line {seen_queries[key]})")
            else:
                seen_queries[key] = row["_line"]
        # gold
        if (kind == "none") != (len(gold) == 0):
            errors.append(f"{where}: kind 'none' requires empty gold_slugs and vice versa")
        if len(set(gold)) != len(gold):
            errors.append(f"{where}: repeated slug in gold_slugs")
        known = slugs.get(coll)
        if known is not None:
            for slug in gold:
                if slug not in known:
                    errors.append(f"{where}: gold slug {slug!r} not in the {coll} collection")
            # soft check: the query names another runbook of the collection by its CamelCase title
            if isinstance(row["query"], str):
                named = {
                    s for s, title in known.items() if title and re.search(rf"\b{re.escape(title)}\b", row["query"])
                }
                stray = sorted(named - set(gold))
                if stray:
                    warnings.append(f"{where}: names the title of {', '.join(stray)} which is not gold")


def report(rows: list[dict], slugs: dict[str, dict[str, str] | None]) -> None:
    counts = Counter((r["collection"], r["kind"], r["split"]) for r in rows)
    print(f"{len(rows)} queries\n")
    print(f"{'collection':<10} {'kind':<9} {'fit':>5} {'holdout':>8} {'total':>6}")
    for coll in COLLECTIONS:
        for kind in KINDS:
            fit, hold = counts[(coll, kind, "fit")], counts[(coll, kind, "holdout")]
            print(f"{coll:<10} {kind:<9} {fit:>5} {hold:>8} {fit + hold:>6}")
    total_hold = sum(v for (c, k, s), v in counts.items() if s == "holdout")
    print(
        f"{'all':<10} {'':<9} {len(rows) - total_hold:>5} {total_hold:>8} {len(rows):>6}"
        f"   (holdout share {total_hold / max(len(rows), 1):.1%})\n"
    )
    hard = Counter((hardness(r), r["split"]) for r in rows)
    for h in ("near", "two-gold"):
        print(f"{h:<9} cases: {hard[(h, 'fit')]} fit, {hard[(h, 'holdout')]} holdout")
    print()
    for coll in COLLECTIONS:
        known = slugs.get(coll)
        gold_counter = Counter(s for r in rows if r["collection"] == coll for s in r["gold_slugs"])
        if known is None:
            print(f"{coll}: {len(gold_counter)} distinct gold runbooks (collection file not available)")
            continue
        covered = sum(1 for s in known if gold_counter[s])
        print(f"{coll}: {covered} of {len(known)} runbooks are gold at least once ({covered / max(len(known), 1):.0%})")
        never = sorted(s for s in known if not gold_counter[s])
        if never:
            print(f"  never gold: {', '.join(never)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=QUERIES, help="queries file (default: %(default)s)")
    parser.add_argument(
        "--assign-splits",
        action="store_true",
        help=f"redraw the split field ({HOLDOUT_SHARE:.0%} holdout, seed {SEED}) and write the file back",
    )
    args = parser.parse_args()

    errors: list[str] = []
    warnings: list[str] = []
    rows = read_rows(args.path, errors)

    slugs: dict[str, dict[str, str] | None] = {"public": None, "demo": None}
    public_files = sorted(PUBLIC_DIR.glob("*.jsonl")) if PUBLIC_DIR.is_dir() else []
    if public_files:
        slugs["public"] = load_slugs(public_files)
    else:
        print(f"note: public corpus folder {PUBLIC_DIR} absent or empty - public gold slugs not checked")
    if DEMO_FILE.is_file():
        slugs["demo"] = load_slugs([DEMO_FILE])
    else:
        errors.append(f"demo runbook file {DEMO_FILE} not found")

    if args.assign_splits:
        structurally_ok = all(
            all(k in r for k in ("id", "collection", "kind", "gold_slugs")) for r in rows
        ) and not any(e.startswith("line") for e in errors)
        if not structurally_ok:
            print("cannot assign splits: fix the structural errors first")
        else:
            for r in rows:
                r.setdefault("split", "fit")
            assign_splits(rows)
            write_rows(args.path, rows)
            print(f"splits written to {args.path} (seed {SEED}, holdout share {HOLDOUT_SHARE:.0%} per stratum)\n")

    validate(rows, slugs, errors, warnings)
    valid_rows = [r for r in rows if all(k in r for k in REQUIRED) and isinstance(r["gold_slugs"], list)]
    report(valid_rows, slugs)

    for w in warnings:
        print(f"warning: {w}")
    if errors:
        print(f"\n{len(errors)} error(s):")
        for e in errors:
            print(f"  {e}")
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
