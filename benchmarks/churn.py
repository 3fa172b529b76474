"""Precision and recall of the churn-intent detector on hand-labelled real tweets.

The labels (tests/data/churn_labels.csv: keys and labels only, the rules at its top) were made by reading
#ElonMuskTwitter tweets from ../shared/data/elonmusktwitter-2022.csv; their text is joined back from that
file here and never committed. The `candidate` stratum holds every tweet matching a broad leaving
keyword net, `other` a random sample of the rest, so population figures weight `other` by its sampling rate.
Rules are tuned on `dev` only; `test` is the held-out figure docs/numbers.md quotes.

    python benchmarks/churn.py [--shared ../shared/data/elonmusktwitter-2022.csv] [--show dev]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "churn_labels.csv"
SHARED = ROOT.parent / "shared" / "data" / "elonmusktwitter-2022.csv"
PLATFORM = "Twitter"


def labelled_texts(shared: Path) -> list[dict[str, str]]:
    """The label rows with their tweet text joined from the shared archive."""
    with shared.open(encoding="utf-8", newline="") as handle:
        texts = {
            (row["author"], row["created_at"], hashlib.sha1(row["text"].encode("utf-8")).hexdigest()[:16]): row["text"]
            for row in csv.DictReader(handle)
        }
    with LABELS.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    return [row | {"text": texts[(row["author"], row["created_at"], row["text_sha1"])]} for row in rows]


def detector() -> object:
    """The shipped default patterns, as `score` runs them (preprocessed text, gated regexes)."""
    from monitor.config import DEFAULT_CHURN_PATTERNS
    from monitor.scoring import Scorer, ScorerSpec, preprocess

    scorer = Scorer(ScorerSpec(churn_patterns=tuple(DEFAULT_CHURN_PATTERNS), platforms=(PLATFORM,)))
    return lambda text: scorer.churn_detector.found(preprocess(text))


def wilson(hits: int, total: int) -> str:
    """95 % Wilson interval of a proportion."""
    if not total:
        return "n/a"
    z, p = 1.96, hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return f"{p:.2f} [{max(0.0, centre - half):.2f}, {min(1.0, centre + half):.2f}]"


def measure(rows: list[dict[str, str]], found: dict[int, bool], weights: dict[str, float]) -> tuple[str, str, str]:
    """Precision and recall in the labelled rows (with intervals), and recall weighted to the population."""
    tp = sum(1 for i, row in enumerate(rows) if found[i] and row["churn"] == "1")
    fp = sum(1 for i, row in enumerate(rows) if found[i] and row["churn"] == "0")
    fn = sum(1 for i, row in enumerate(rows) if not found[i] and row["churn"] == "1")
    w_tp = sum(weights[row["stratum"]] for i, row in enumerate(rows) if found[i] and row["churn"] == "1")
    w_fn = sum(weights[row["stratum"]] for i, row in enumerate(rows) if not found[i] and row["churn"] == "1")
    weighted = f"{w_tp / (w_tp + w_fn):.2f}" if w_tp + w_fn else "n/a"
    return wilson(tp, tp + fp) + f" ({tp}/{tp + fp})", wilson(tp, tp + fn) + f" ({tp}/{tp + fn})", weighted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared archive the labels refer to")
    parser.add_argument("--show", choices=["dev", "test"], help="print the misclassified tweets of one split")
    args = parser.parse_args()
    if not args.shared.exists():
        print(f"{args.shared} not found: the labels need the archive they were made on", file=sys.stderr)
        return 1
    rows = labelled_texts(args.shared)
    is_churn = detector()
    found = {i: bool(is_churn(row["text"])) for i, row in enumerate(rows)}  # type: ignore[operator]
    weights = {"candidate": 1.0, "other": 9430 / 320}  # "other" is a 320-tweet sample of about 9,430
    print(f"churn intent on {len(rows)} hand-labelled #ElonMuskTwitter tweets (platform {PLATFORM!r})")
    print(f"{'split':6} {'posts':>6} {'churn':>6}  {'precision [95 % CI] (hits)':32} {'recall [95 % CI] (hits)':32} weighted recall")
    for split in ("dev", "test", "all"):
        chosen = [i for i, row in enumerate(rows) if split in ("all", row["split"])]
        subset = [rows[i] for i in chosen]
        precision, recall, weighted = measure(subset, {n: found[i] for n, i in enumerate(chosen)}, weights)
        positives = sum(row["churn"] == "1" for row in subset)
        print(f"{split:6} {len(subset):>6} {positives:>6}  {precision:32} {recall:32} {weighted}")
    if args.show:
        for i, row in enumerate(rows):
            if row["split"] == args.show and found[i] != (row["churn"] == "1"):
                kind = "FALSE HIT" if found[i] else "MISSED"
                print(f"\n{kind} [{row['stratum']}] {' '.join(row['text'].split())[:280]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
