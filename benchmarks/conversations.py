"""Multi-turn retrieval: follow-ups, references, topic shifts and small talk, per split (fit / holdout).

    .venv/bin/python benchmarks/conversations.py          # every conversation through the real chat path
    .venv/bin/python benchmarks/conversations.py --fit    # choose the shift thresholds on the fit part only
    .venv/bin/python benchmarks/conversations.py --file benchmarks/data/conversations_blind.jsonl  # unseen set

The conversations are benchmarks/data/conversations.jsonl (written for this project; see conversations.md).
The default run sends every turn through ``chat_answer`` (offline provider, the real search, audit writes)
in one chat session per conversation and scores the first recommended runbook of each turn against the
turn's gold; a reference to a rank ("the second one") is scored against what the previous answer
presented at that rank. Beside it, the same turns searched one message at a time (the behaviour before
conversations), for the same-run comparison. ``--fit`` fits the topic-shift model (aihelper/chat/conversation.py,
SHIFT_WEIGHTS) on the fit part with the labelled topic in play and prints the weights; holdout is only reported.
``conversations_blind.jsonl`` is a second set, all holdout, written by a separate author who never saw the system
or the first set (benchmarks/data/conversations_blind.md): nothing is fitted or chosen on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from pathlib import Path

from _setup import DEMO_PREFIX, django_setup, load_corpus, use_collection

CONVERSATIONS = Path(__file__).resolve().parent / "data" / "conversations.jsonl"
KINDS = ("first", "follow_up", "reference", "shift", "small_talk")


def conversations(path: Path = CONVERSATIONS) -> list[dict]:
    if not path.is_file():
        print(f"SKIP: {path} is absent")
        sys.exit(0)
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def expected(turn: dict, previous: list[str]) -> set[str] | None:
    """The slugs that are right first for this turn; None when it cannot be scored (rank beyond the list)."""
    rank = (turn.get("ref") or {}).get("rank")
    if turn.get("gold") is None and rank is not None:
        return {previous[rank - 1]} if 0 < rank <= len(previous) else None
    return set(turn.get("gold") or ())


class Tally:
    def __init__(self):
        self.hits = defaultdict(int)
        self.total = defaultdict(int)

    def add(self, key, hit: bool) -> None:
        self.total[key] += 1
        self.hits[key] += int(hit)

    def cell(self, key) -> str:
        total = self.total.get(key, 0)
        return f"{self.hits[key] / total:.3f} ({self.hits[key]}/{total})" if total else "-"


def run_chat(convs: list[dict], user, timings: dict | None = None) -> tuple[Tally, Tally, list[str]]:
    """Every turn through chat_answer in one session; the single-message baseline beside it."""
    from aihelper.chat.llm import OfflineProvider
    from aihelper.chat.retrieval import runbooks_find
    from aihelper.chat.services.orchestrator import chat_answer
    from runbooks.search import SearchConfig

    config = SearchConfig.from_settings()
    ours, alone, misses = Tally(), Tally(), []
    for conv in convs:
        use_collection(conv["collection"])
        session_id, previous, previous_alone, previous_right = None, [], [], False
        for number, turn in enumerate(conv["turns"], start=1):
            answer = chat_answer(user=user, message=turn["text"], session_id=session_id,
                                 provider=OfflineProvider(), search_config=config)
            session_id = answer.session.pk
            slugs = [solution.slug for solution in answer.solutions]
            started = time.perf_counter()
            alone_outcome = runbooks_find(query=turn["text"], user=user, config=config)
            if timings is not None and number > 1:
                # Both without the query embedding (the chat's is subtracted; the second call finds it cached).
                embed = answer.audit_log.ai_action_details["retrieval"]["timings_ms"].get("embed_ms", 0.0)
                timings.setdefault("message alone (runbook search)", []).append((time.perf_counter() - started) * 1000)
                timings.setdefault("conversation search (retrieval step)", []).append(
                    answer.timings_ms["retrieval"] - embed)
            baseline = [r.runbook.slug for r in alone_outcome.recommended]
            for tally, shown, before in ((ours, slugs, previous), (alone, baseline, previous_alone)):
                gold = expected(turn, before)
                if gold is None and tally is ours:
                    previous_right = False  # an unscored turn: the next one is not "after a right turn"
                if gold is not None:
                    hit = bool(shown) and shown[0] in gold
                    tally.add((conv["split"], turn["kind"]), hit)
                    tally.add((conv["split"], turn["kind"], conv["collection"]), hit)
                    if tally is ours and previous_right:
                        tally.add((conv["split"], turn["kind"], "after a right turn"), hit)
                    if tally is ours:
                        previous_right = hit
                    if tally is ours and not hit:
                        kind = answer.audit_log.ai_action_details.get("conversation", {}).get("kind")
                        misses.append(f"{conv['id']}#{number} {turn['kind']} as {kind}: {turn['text'][:70]!r} "
                                      f"-> {shown[:1]} want {sorted(gold)}")
            previous, previous_alone = slugs, baseline
    return ours, alone, misses


def table(ours: Tally, alone: Tally) -> None:
    print("\nfirst runbook right per turn (a turn not scored: a rank reference beyond the previous list);")
    print("'after a right turn': only turns whose previous turn was answered right (no inherited mistake)\n")
    print(f"| {'split':7} | {'turn kind':10} | {'conversation search':>19} | {'after a right turn':>18} | "
          f"{'message alone':>15} | {'demo':>14} | {'public':>14} |")
    print("|" + "|".join("-" * width for width in (9, 12, 21, 20, 17, 16, 16)) + "|")
    for split in ("fit", "holdout"):
        for kind in KINDS:
            if (split, kind) not in ours.total:
                continue
            print(f"| {split:7} | {kind:10} | {ours.cell((split, kind)):>19} | "
                  f"{ours.cell((split, kind, 'after a right turn')):>18} | {alone.cell((split, kind)):>15} | "
                  f"{ours.cell((split, kind, 'demo')):>14} | {ours.cell((split, kind, 'public')):>14} |")


def oracle_rows(convs: list[dict], user) -> list[dict]:
    """Every later turn searched with the labelled topic in play (the previous gold, as if every earlier turn
    had been answered right): the shift model's inputs, where the message's own best runbook is not in play."""
    from aihelper.chat.conversation import rules_out, shift_features
    from aihelper.chat.retrieval import runbooks_find
    from aihelper.chat.turns import turn_cues
    from runbooks.models import Runbook
    from runbooks.search import SearchConfig

    config = SearchConfig.from_settings()
    rows = []
    for conv in convs:
        use_collection(conv["collection"])
        ids = dict(Runbook.objects.filter(enabled=True).values_list("slug", "pk"))
        topic = set(conv["turns"][0]["gold"])
        for turn in conv["turns"][1:]:
            gold = set(turn.get("gold") or ())
            if gold:
                outcome = runbooks_find(query=turn["text"], user=user, limit=config.max_recommended, config=config,
                                        extra_ids=[ids[slug] for slug in topic])
                top = outcome.results[0] if outcome.results else None
                if top is not None and top.runbook.slug not in topic:
                    in_play = max((r for r in outcome.results if r.runbook.slug in topic),
                                  key=lambda r: r.components.get("score", 0.0))
                    cues = turn_cues(turn["text"])
                    rows.append({"split": conv["split"], "conv": conv["id"], "kind": turn["kind"],
                                 "right": top.runbook.slug in gold, "ruled_out": rules_out(cues, top),
                                 "x": shift_features(cues=cues, top=top, topic=in_play)})
                topic = gold
    return rows


def logistic_fit(x, y, l2: float, steps: int = 5000, rate: float = 0.5):
    import numpy as np

    xb = np.hstack([np.ones((len(x), 1)), x])
    weights = np.zeros(xb.shape[1])
    for _ in range(steps):
        probability = 1 / (1 + np.exp(-xb @ weights))
        weights -= rate * (xb.T @ (probability - y) / len(y) + l2 * np.r_[0, weights[1:]])
    return weights


def fit(convs: list[dict], user, l2: float = 0.01) -> None:
    """Fit the shift model on the fit part (oracle context); report both parts at a few thresholds."""
    import numpy as np

    from aihelper.chat.conversation import SHIFT_FEATURES, SHIFT_NEW_FLOOR

    rows = oracle_rows(convs, user)

    def fitted(part: list[dict]):
        # A message that rules out its own best runbook is never a shift to it: the guard decides, not the model.
        part = [row for row in part if not row["ruled_out"]]
        return logistic_fit(np.array([row["x"] for row in part]),
                            np.array([row["kind"] == "shift" for row in part], dtype=float), l2=l2)

    def right(weights, row: dict, threshold: float) -> bool:
        """A shift decided a shift to its gold, or another turn kept."""
        shift = (1 / (1 + np.exp(-(weights[0] + np.dot(weights[1:], row["x"])))) >= threshold
                 and row["x"][0] >= SHIFT_NEW_FLOOR and not row["ruled_out"])
        return (shift and row["right"]) if row["kind"] == "shift" else not shift

    train = [row for row in rows if row["split"] == "fit" and not row["ruled_out"]]
    if not train:
        print("\nno fit-part turns in this file: nothing to fit (the unseen set is holdout only)")
        return
    weights = fitted(train)
    ruled = sum(row["ruled_out"] for row in rows)
    print(f"\n{ruled} turns rule out their own best runbook (decided by the guard, not fitted), shifts among them: "
          f"{sum(row['ruled_out'] and row['kind'] == 'shift' for row in rows)}")
    print(f"shift model, fitted on {len(train)} fit-part turns whose own best runbook is not the topic (L2 {l2}):")
    print("  SHIFT_WEIGHTS = (" + ", ".join(f"{w:.2f}" for w in weights) + ")")
    print("  # intercept, " + ", ".join(SHIFT_FEATURES))

    def decided(split: str, threshold: float) -> tuple[int, int, int, int]:
        part = [row for row in rows if row["split"] == split]
        shifts = [right(weights, row, threshold) for row in part if row["kind"] == "shift"]
        stays = [right(weights, row, threshold) for row in part if row["kind"] != "shift"]
        return sum(shifts), len(shifts), sum(stays), len(stays)

    def balanced(counts: tuple[int, int, int, int]) -> float:
        """Mean of the two accuracies: shifts are a fifth of the turns, both kinds of mistake count alike."""
        return (counts[0] / max(1, counts[1]) + counts[2] / max(1, counts[3])) / 2

    print("\nturns decided right with the labelled topic in play (a shift is right when its own best runbook is gold),")
    print("fit part; the threshold is the one with the best balanced accuracy (mean of the two) on the fit part:")
    candidates = (0.2, 0.3, 0.4, 0.5)
    for threshold in candidates:
        shifts, n_shifts, kept, n_kept = decided("fit", threshold)
        print(f"  threshold {threshold}: shifts {shifts}/{n_shifts}, others kept {kept}/{n_kept}")
    chosen = max(candidates, key=lambda threshold: balanced(decided("fit", threshold)))
    fit_rows = [row for row in rows if row["split"] == "fit"]
    loo = defaultdict(int)
    for conv in {row["conv"] for row in fit_rows}:
        left_out = fitted([row for row in fit_rows if row["conv"] != conv])
        for row in fit_rows:
            if row["conv"] == conv:
                loo[row["kind"] == "shift", right(left_out, row, chosen)] += 1
    print(f"chosen SHIFT_THRESHOLD {chosen}; fit part leaving each conversation out of its own fit: shifts "
          f"{loo[True, True]}/{loo[True, True] + loo[True, False]}, "
          f"others kept {loo[False, True]}/{loo[False, True] + loo[False, False]}")
    shifts, n_shifts, kept, n_kept = decided("holdout", chosen)
    print(f"holdout with it: shifts {shifts}/{n_shifts}, others kept {kept}/{n_kept}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="fit the topic-shift model on the fit part")
    parser.add_argument("--misses", action="store_true", help="list every wrong turn")
    parser.add_argument("--file", type=Path, default=CONVERSATIONS, help="another conversations file")
    args = parser.parse_args()
    convs = conversations(args.file)
    logging.disable(logging.INFO)  # one "chat answer" line per turn would bury the table
    django_setup("aihelper_bench_conversations")
    load_corpus(demo=True)
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-conversations", defaults={"is_superuser": True})
    if args.fit:
        fit(convs, user)
        return
    timings: dict[str, list[float]] = {}
    ours, alone, misses = run_chat(convs, user, timings)
    counts = defaultdict(int)
    for conv in convs:
        counts[conv["split"]] += 1
    print(f"conversations: {dict(counts)}; demo runbooks prefix {DEMO_PREFIX!r}")
    table(ours, alone)
    print("\nretrieval latency of turns 2+ without the query embedding (same run, interleaved per turn)")
    for name, values in timings.items():
        ordered = sorted(values)
        p50, p95 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        print(f"  {name:38} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (n={len(values)})")
    if args.misses:
        print("\nwrong first runbook:")
        for line in misses:
            print("  " + line)


if __name__ == "__main__":
    main()
