"""Draw the reproducible sample behind tests/data/churn_labels.csv.

The labels in churn_labels.csv were assigned by a human reading each tweet; this
script only decides WHICH tweets were read, so the sample can be rebuilt from the
shared data set (../shared/data/elonmusktwitter-2022.csv beside the project) without copying any
tweet text into the repository (see that data set's README).

Procedure (stdlib only):
  1. Read the CSV in file order; drop exact duplicate texts (keep first occurrence).
  2. "candidate" stratum: lower-cased text matches the broad leaving net NET below;
     320 drawn with random.Random(2022).sample.
  3. "other" stratum: the remaining tweets; 320 drawn with random.Random(2023).sample.
  4. Within each stratum, random.Random(7).shuffle of the drawn rows; the first half
     is "dev", the second half "test".
Keys: author, created_at and text_sha1 = first 16 hex digits of sha1(text, UTF-8).

Completing the candidate stratum (--all-candidates, function rest_of_candidates):
  5. Every candidate (step 2 pool) NOT drawn in step 2, kept in file order, then
     random.Random(11).shuffle; the first half (len // 2) is "dev", the rest "test".
     These rows were labelled afterwards with the same rules and appended to
     churn_labels.csv (stratum "candidate"), so the candidate stratum is the full
     keyword-net pool while "other" stays a random sample of 320.

Usage: python tests/data/make_churn_sample.py [--all-candidates] [DATA_CSV] [OUT_CSV]
OUT_CSV (default /tmp/churn_work/sample.csv, or /tmp/churn_work2/extra_candidates.csv
with --all-candidates) CONTAINS TWEET TEXT: keep it outside the repository.
"""
import csv
import hashlib
import random
import re
import sys
from pathlib import Path

DATA = str(Path(__file__).resolve().parents[3] / "shared" / "data" / "elonmusktwitter-2022.csv")
OUT = "/tmp/churn_work/sample.csv"
OUT_EXTRA = "/tmp/churn_work2/extra_candidates.csv"
EXTRA_SEED = 11
N_PER_STRATUM = 320
NET = re.compile(
    r"leav|quit|delet|deactiv|bye|goodbye|farewell|last tweet|moving to|move to"
    r"|migrat|mastodon|hive|tumblr|counter ?social|see you on|find me on"
    r"|follow me on|signing off|i['\u2019]?m out|i am out|done with twitter|exodus"
)


def text_sha1(text):
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def load(path=DATA):
    seen, rows = set(), []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["text"] in seen:
                continue
            seen.add(row["text"])
            rows.append(row)
    return rows


def split_pools(rows):
    cand = [r for r in rows if NET.search(r["text"].lower())]
    other = [r for r in rows if not NET.search(r["text"].lower())]
    return cand, other


def sample(rows):
    cand, other = split_pools(rows)
    out = []
    for name, pool, seed in (("candidate", cand, 2022), ("other", other, 2023)):
        picked = random.Random(seed).sample(pool, N_PER_STRATUM)
        random.Random(7).shuffle(picked)
        half = len(picked) // 2
        for i, r in enumerate(picked):
            out.append(dict(r, stratum=name, split="dev" if i < half else "test",
                            text_sha1=text_sha1(r["text"])))
    return out, len(cand), len(other)


def rest_of_candidates(rows):
    """Step 5: the candidates not drawn by sample(), split dev/test with seed 11."""
    drawn, n_cand, n_other = sample(rows)
    taken = {r["text_sha1"] for r in drawn if r["stratum"] == "candidate"}
    cand, _ = split_pools(rows)
    rest = [r for r in cand if text_sha1(r["text"]) not in taken]
    random.Random(EXTRA_SEED).shuffle(rest)
    half = len(rest) // 2
    out = [dict(r, stratum="candidate", split="dev" if i < half else "test",
                text_sha1=text_sha1(r["text"])) for i, r in enumerate(rest)]
    return out, n_cand, n_other


def main(argv):
    argv = list(argv)
    extra = "--all-candidates" in argv
    if extra:
        argv.remove("--all-candidates")
    data = argv[1] if len(argv) > 1 else DATA
    dest = argv[2] if len(argv) > 2 else (OUT_EXTRA if extra else OUT)
    rows, n_cand, n_other = (rest_of_candidates if extra else sample)(load(data))
    cols = ["author", "created_at", "text_sha1", "stratum", "split", "text"]
    with open(dest, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(f"pool: {n_cand} candidates, {n_other} others; wrote {len(rows)} rows to {dest}")


if __name__ == "__main__":
    main(sys.argv)
