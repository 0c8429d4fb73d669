#!/usr/bin/env python3
"""Validate benchmarks/data/conversations.jsonl (labelled multi-turn chat conversations).

Run from anywhere (standard library only):

    python3 benchmarks/data/check_conversations.py                  # validate and print counts
    python3 benchmarks/data/check_conversations.py --assign-splits  # (re)draw fit/holdout, then validate

Checks, per line: valid JSON; required and allowed fields and values; ids unique and shaped
conv-<demo|public>-NNN to match the collection; 2-6 turns; the first turn and only the first turn is
kind "first"; gold is null or a list of 1-2 distinct slugs that exist in the conversation's
collection; rank references have "ref": {"rank": 1..3} and gold null; step references point at an
existing step of their (demo) gold runbook; section references name an existing heading of their
(public) gold runbook; follow_up, small_talk and non-rank references keep the topic under
discussion and a shift changes it; after a rank reference (topic unknown) only a shift or another
rank reference may follow; every conversation has a follow_up; small_talk with gold null only as the
closing turn.  Across the file: opening texts unique, no follow_up text used more than 3 times, and
no holdout conversation shares an opening or a near-identical follow-up sequence with a fit one.
Slugs named in notes must exist too.  Prints counts per split x kind x collection.  Exits 1 on any
error.

Holdout draw (--assign-splits): conversations are grouped by (collection, has a shift turn, has a
reference turn).  Within
each group, in id order, random.Random(16) shuffles them and the first round(40 % of the group)
become "holdout", the rest "fit".  The draw depends only on ids and labels.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
CONVERSATIONS = HERE / "conversations.jsonl"
QUERIES = HERE / "queries.jsonl"
PUBLIC_FILE = (PROJECT_ROOT / ".." / "shared" / "data" / "runbooks" / "prometheus_operator_runbooks.jsonl").resolve()
DEMO_FILE = PROJECT_ROOT / "runbooks" / "demo_data" / "demo_runbooks.jsonl"

SEED = 16
HOLDOUT_SHARE = 0.40
MAX_FOLLOW_UP_REPEATS = 3
SEQ_SIMILARITY_LIMIT = 0.80

CONV_REQUIRED = ("id", "collection", "split", "turns")
CONV_OPTIONAL = ("note",)
TURN_REQUIRED = ("text", "kind", "gold")
TURN_OPTIONAL = ("ref", "note")
COLLECTIONS = ("demo", "public")
SPLITS = ("fit", "holdout")
KINDS = ("first", "follow_up", "reference", "shift", "small_talk")
ID_RE = re.compile(r"^conv-(demo|public)-(\d{3,})$")
SLUG_IN_NOTE_RE = re.compile(r"(?<![\w/.-])([a-z0-9-]+/[a-z0-9-]+)(?![\w/-])")
FENCE_RE = re.compile(r"^(```|~~~).*?^(```|~~~)\s*$", re.M | re.S)
HEADING_RE = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def load_runbooks(path: Path) -> dict[str, dict]:
    """slug -> {"steps": n_steps, "headings": set of heading texts (fenced code removed)}."""
    runbooks: dict[str, dict] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            body = FENCE_RE.sub("", row.get("body_markdown") or "")
            runbooks[row["slug"]] = {
                "steps": len(row.get("steps") or []),
                "headings": {h.strip() for h in HEADING_RE.findall(body)},
            }
    return runbooks


def read_rows(path: Path, errors: list[str]) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                errors.append(f"line {lineno}: empty line")
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"line {lineno}: invalid JSON ({exc})")
                continue
            if not isinstance(row, dict):
                errors.append(f"line {lineno}: not a JSON object")
                continue
            row["_line"] = lineno
            rows.append(row)
    return rows


def has_shift(row: dict) -> bool:
    return any(t.get("kind") == "shift" for t in row.get("turns") or [] if isinstance(t, dict))


def has_reference(row: dict) -> bool:
    return any(t.get("kind") == "reference" for t in row.get("turns") or [] if isinstance(t, dict))


def assign_splits(path: Path) -> None:
    errors: list[str] = []
    rows = read_rows(path, errors)
    if errors:
        sys.exit("cannot assign splits: " + "; ".join(errors))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row.get("collection"), has_shift(row), has_reference(row))].append(row)
    for key in sorted(groups, key=str):
        members = sorted(groups[key], key=lambda r: r["id"])
        random.Random(SEED).shuffle(members)
        n_holdout = round(HOLDOUT_SHARE * len(members))
        for i, row in enumerate(members):
            row["split"] = "holdout" if i < n_holdout else "fit"
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            row.pop("_line", None)
            ordered = {k: row[k] for k in ("id", "collection", "split", "turns", "note") if k in row}
            ordered.update({k: v for k, v in row.items() if k not in ordered})
            handle.write(json.dumps(ordered, ensure_ascii=False) + "\n")
    print(f"assigned splits with seed {SEED}, holdout share {HOLDOUT_SHARE:.0%} "
          "per (collection, has shift, has reference)")


def check_turn(cid: str, i: int, turn, coll: str, corpora: dict, errors: list[str]) -> None:
    where = f"{cid} turn {i + 1}"
    if not isinstance(turn, dict):
        errors.append(f"{where}: not an object")
        return
    for key in TURN_REQUIRED:
        if key not in turn:
            errors.append(f"{where}: missing field {key!r}")
    for key in turn:
        if key not in TURN_REQUIRED + TURN_OPTIONAL:
            errors.append(f"{where}: unknown field {key!r}")
    text, kind, gold = turn.get("text"), turn.get("kind"), turn.get("gold")
    if not isinstance(text, str) or not text.strip():
        errors.append(f"{where}: text must be a non-empty string")
    if kind not in KINDS:
        errors.append(f"{where}: kind {kind!r} not in {KINDS}")
    if gold is not None:
        if not isinstance(gold, list) or not 1 <= len(gold) <= 2 or not all(isinstance(g, str) for g in gold):
            errors.append(f"{where}: gold must be null or a list of 1-2 slugs")
        elif len(set(gold)) != len(gold):
            errors.append(f"{where}: duplicate gold slug")
        else:
            corpus = corpora.get(coll)
            for slug in gold:
                if coll == "demo" and not slug.startswith("demo/"):
                    errors.append(f"{where}: demo slug {slug!r} lacks the demo/ prefix")
                if coll == "public" and slug.startswith("demo/"):
                    errors.append(f"{where}: demo slug {slug!r} in a public conversation")
                if corpus is not None and slug not in corpus:
                    errors.append(f"{where}: gold slug {slug!r} not in the {coll} runbooks")
    if kind in ("first", "follow_up", "shift") and not gold:
        errors.append(f"{where}: kind {kind} needs a gold runbook")
    ref = turn.get("ref")
    if ref is not None:
        if kind != "reference":
            errors.append(f"{where}: ref only allowed on reference turns")
        if not isinstance(ref, dict) or len(ref) != 1 or next(iter(ref)) not in ("rank", "step", "section"):
            errors.append(f"{where}: ref must be exactly one of rank/step/section")
            return
        (rkey, rval), = ref.items()
        if rkey == "rank":
            if not isinstance(rval, int) or isinstance(rval, bool) or not 1 <= rval <= 3:
                errors.append(f"{where}: ref rank must be an integer 1-3")
            if gold is not None:
                errors.append(f"{where}: rank reference must have gold null")
        elif not gold or len(gold) != 1:
            errors.append(f"{where}: {rkey} reference needs exactly one gold slug")
        elif rkey == "step":
            if coll != "demo":
                errors.append(f"{where}: step references are for demo runbooks; use section for public")
            elif not isinstance(rval, int) or isinstance(rval, bool) or rval < 1:
                errors.append(f"{where}: ref step must be a positive integer")
            elif corpora.get(coll) is not None and gold[0] in corpora[coll]:
                n_steps = corpora[coll][gold[0]]["steps"]
                if rval > n_steps:
                    errors.append(f"{where}: {gold[0]} has {n_steps} steps, no step {rval}")
        elif rkey == "section":
            if coll != "public":
                errors.append(f"{where}: section references are for public runbooks; use step for demo")
            elif not isinstance(rval, str) or not rval.strip():
                errors.append(f"{where}: ref section must be a heading text")
            elif corpora.get(coll) is not None and gold[0] in corpora[coll]:
                if rval not in corpora[coll][gold[0]]["headings"]:
                    errors.append(f"{where}: {gold[0]} has no heading {rval!r}")
    elif kind == "reference" and not gold:
        errors.append(f"{where}: reference without ref rank needs a gold slug")
    note = turn.get("note")
    if note is not None:
        if not isinstance(note, str) or not note.strip():
            errors.append(f"{where}: note must be a non-empty string")
        else:
            if note.startswith("distractor:") and kind != "follow_up":
                errors.append(f"{where}: 'distractor:' notes are for follow_up turns")
            if note.startswith("near-neighbour:") and kind != "shift":
                errors.append(f"{where}: 'near-neighbour:' notes are for shift turns")
            corpus = corpora.get(coll)
            if corpus is not None:
                for slug in SLUG_IN_NOTE_RE.findall(note):
                    if slug not in corpus:
                        errors.append(f"{where}: note names unknown slug {slug!r}")


def check_flow(cid: str, turns: list, errors: list[str]) -> None:
    """Topic tracking: which runbook is under discussion after each turn."""
    current = None  # frozenset of gold slugs, or "unknown" after a rank reference
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return
        where = f"{cid} turn {i + 1}"
        kind, gold, ref = turn.get("kind"), turn.get("gold"), turn.get("ref")
        gset = frozenset(gold) if isinstance(gold, list) else None
        if i == 0:
            if kind != "first":
                errors.append(f"{where}: a conversation must open with kind 'first'")
            current = gset
            continue
        if kind == "first":
            errors.append(f"{where}: kind 'first' only for the opening turn")
            continue
        is_rank = isinstance(ref, dict) and "rank" in ref
        if kind == "shift":
            if gset is not None and gset == current:
                errors.append(f"{where}: shift to the runbook already under discussion")
            current = gset
        elif is_rank:
            current = "unknown"
        elif current == "unknown":
            errors.append(f"{where}: {kind} after a rank reference (topic unknown); "
                          "only shift or rank reference allowed")
        elif kind == "reference" and isinstance(ref, dict) and gset and isinstance(current, frozenset) \
                and gset < current:
            current = gset  # a step/section of one of the two runbooks under discussion narrows the topic
        elif kind == "small_talk" and gold is None:
            if i != len(turns) - 1:
                errors.append(f"{where}: small_talk with gold null is only allowed as the closing turn")
        elif gset != current:
            errors.append(f"{where}: {kind} gold {sorted(gset or [])} differs from the topic under discussion "
                          f"{sorted(current or [])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, default=CONVERSATIONS)
    parser.add_argument("--assign-splits", action="store_true", help="(re)draw the fit/holdout split first")
    args = parser.parse_args()

    if args.assign_splits:
        assign_splits(args.file)

    corpora: dict[str, dict | None] = {"demo": load_runbooks(DEMO_FILE), "public": None}
    if PUBLIC_FILE.is_file():
        corpora["public"] = load_runbooks(PUBLIC_FILE)
    else:
        print(f"NOTE: {PUBLIC_FILE} is absent, so public slug, section and note checks are skipped")

    errors: list[str] = []
    warnings: list[str] = []
    rows = read_rows(args.file, errors)
    seen_ids: set[str] = set()
    for row in rows:
        cid = str(row.get("id", f"line {row['_line']}"))
        for key in CONV_REQUIRED:
            if key not in row:
                errors.append(f"{cid}: missing field {key!r}")
        for key in row:
            if key not in CONV_REQUIRED + CONV_OPTIONAL + ("_line",):
                errors.append(f"{cid}: unknown field {key!r}")
        coll = row.get("collection")
        if coll not in COLLECTIONS:
            errors.append(f"{cid}: collection {coll!r} not in {COLLECTIONS}")
        match = ID_RE.match(cid)
        if not match:
            errors.append(f"{cid}: id must look like conv-<demo|public>-NNN")
        elif match.group(1) != coll:
            errors.append(f"{cid}: id prefix does not match collection {coll!r}")
        if cid in seen_ids:
            errors.append(f"{cid}: duplicate id")
        seen_ids.add(cid)
        if row.get("split") not in SPLITS:
            errors.append(f"{cid}: split {row.get('split')!r} not in {SPLITS}")
        if "note" in row and (not isinstance(row["note"], str) or not row["note"].strip()):
            errors.append(f"{cid}: note must be a non-empty string")
        turns = row.get("turns")
        if not isinstance(turns, list) or not 2 <= len(turns) <= 6:
            errors.append(f"{cid}: turns must be a list of 2-6 user turns")
            continue
        for i, turn in enumerate(turns):
            check_turn(cid, i, turn, coll, corpora, errors)
        check_flow(cid, turns, errors)
        if not any(isinstance(t, dict) and t.get("kind") == "follow_up" for t in turns):
            errors.append(f"{cid}: needs at least one follow_up turn")

    good = [r for r in rows if isinstance(r.get("turns"), list) and all(isinstance(t, dict) for t in r["turns"])]

    # file-wide text checks
    openings: dict[str, str] = {}
    follow_counts: Counter = Counter()
    for row in good:
        turns = row["turns"]
        first = norm(str(turns[0].get("text", "")))
        if first in openings:
            errors.append(f"{row['id']}: opening text duplicates {openings[first]}")
        openings.setdefault(first, row["id"])
        for t in turns:
            if t.get("kind") == "follow_up":
                follow_counts[norm(str(t.get("text", "")))] += 1
    for text, n in follow_counts.items():
        if n > MAX_FOLLOW_UP_REPEATS:
            errors.append(f"follow_up text used {n} times (max {MAX_FOLLOW_UP_REPEATS}): {text!r}")

    # holdout leakage
    def follow_seq(row: dict) -> str:
        return " | ".join(norm(str(t.get("text", ""))) for t in row["turns"] if t.get("kind") == "follow_up")

    fit = [r for r in good if r.get("split") == "fit"]
    holdout = [r for r in good if r.get("split") == "holdout"]
    for h in holdout:
        h_first, h_seq = norm(str(h["turns"][0].get("text", ""))), follow_seq(h)
        for f in fit:
            if h_first == norm(str(f["turns"][0].get("text", ""))):
                errors.append(f"{h['id']} (holdout) shares its opening with {f['id']} (fit)")
            ratio = difflib.SequenceMatcher(None, h_seq, follow_seq(f)).ratio()
            if ratio >= SEQ_SIMILARITY_LIMIT:
                errors.append(f"{h['id']} (holdout) follow-up sequence {ratio:.2f} similar to {f['id']} (fit)")

    # overlap with the single-turn set (soft)
    if QUERIES.is_file():
        query_texts = set()
        with QUERIES.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    query_texts.add(norm(json.loads(line).get("query", "")))
        for row in good:
            for i, t in enumerate(row["turns"]):
                if norm(str(t.get("text", ""))) in query_texts:
                    warnings.append(f"{row['id']} turn {i + 1}: text also appears in queries.jsonl")

    print_counts(good)
    for w in warnings:
        print("WARNING:", w)
    if errors:
        print(f"\n{len(errors)} error(s):")
        for e in errors:
            print("ERROR:", e)
        return 1
    print(f"\nOK: {len(rows)} conversations, no errors")
    return 0


def print_counts(rows: list[dict]) -> None:
    turn_counts: Counter = Counter()
    conv_counts: Counter = Counter()
    for row in rows:
        conv_counts[(row.get("collection"), row.get("split"))] += 1
        for t in row["turns"]:
            turn_counts[(row.get("collection"), t.get("kind"), row.get("split"))] += 1

    print("conversations")
    print(f"  {'collection':<10} {'fit':>5} {'holdout':>8} {'total':>6}")
    for coll in COLLECTIONS:
        f, h = conv_counts[(coll, "fit")], conv_counts[(coll, "holdout")]
        print(f"  {coll:<10} {f:>5} {h:>8} {f + h:>6}")
    f = sum(v for (_, s), v in conv_counts.items() if s == "fit")
    h = sum(v for (_, s), v in conv_counts.items() if s == "holdout")
    print(f"  {'all':<10} {f:>5} {h:>8} {f + h:>6}")

    print("\nturns (collection x kind x split)")
    print(f"  {'collection':<10} {'kind':<11} {'fit':>5} {'holdout':>8} {'total':>6}")
    for coll in COLLECTIONS + ("all",):
        for kind in KINDS + ("all",):
            def n(split: str, coll: str = coll, kind: str = kind) -> int:
                return sum(v for (c, k, s), v in turn_counts.items()
                           if (coll == "all" or c == coll) and (kind == "all" or k == kind) and s == split)
            print(f"  {coll:<10} {kind:<11} {n('fit'):>5} {n('holdout'):>8} {n('fit') + n('holdout'):>6}")

    total = len(rows) or 1
    with_kind = {k: sum(1 for r in rows if any(t.get("kind") == k for t in r["turns"])) for k in KINDS}
    two_shifts = sum(1 for r in rows if sum(t.get("kind") == "shift" for t in r["turns"]) >= 2)
    follow = [t for r in rows for t in r["turns"] if t.get("kind") == "follow_up"]
    distract = sum(1 for t in follow if str(t.get("note", "")).startswith("distractor:"))
    shifts = [t for r in rows for t in r["turns"] if t.get("kind") == "shift"]
    near = sum(1 for t in shifts if str(t.get("note", "")).startswith("near-neighbour:"))
    refs = Counter(next(iter(t["ref"])) if isinstance(t.get("ref"), dict) and t["ref"] else "runbook"
                   for r in rows for t in r["turns"] if t.get("kind") == "reference")
    two_gold = sum(1 for r in rows for t in r["turns"] if isinstance(t.get("gold"), list) and len(t["gold"]) == 2)
    print("\nmix")
    for k in ("shift", "reference", "small_talk"):
        print(f"  conversations with {k}: {with_kind[k]} ({with_kind[k] / total:.0%})")
    print(f"  conversations with two or more shifts: {two_shifts}")
    print(f"  follow_up turns marked distractor: {distract} of {len(follow)} ({distract / (len(follow) or 1):.0%})")
    print(f"  shift turns marked near-neighbour: {near} of {len(shifts)} ({near / (len(shifts) or 1):.0%})")
    print(f"  reference turns by ref type: {dict(sorted(refs.items()))}")
    print(f"  turns with two gold slugs: {two_gold}")
    for coll in COLLECTIONS:
        gold = {g for r in rows if r.get("collection") == coll for t in r["turns"] for g in (t.get("gold") or [])}
        print(f"  distinct {coll} runbooks used as gold: {len(gold)}")


if __name__ == "__main__":
    sys.exit(main())
