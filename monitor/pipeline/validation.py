"""`sample` (a stratified sample of an event's scored posts for a person to label) and `validate` (their labels read back against ours, the agreement stored)."""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from monitor.agreement import CHURN_CLASSES, SENTIMENT_CLASSES, Agreement, Labelled, agreement, allocate
from monitor.errors import UsageError
from monitor.pipeline.runlog import recorded_run
from monitor.pipeline.workspace import Workspace, current_scorer, refuse_overwriting

SAMPLE_COLUMNS = [
    "id", "source", "created_at", "author", "text", "our_sentiment", "our_churn", "stratum", "stratum_size",
    "label_sentiment", "label_churn",
]  # fmt: skip
REQUIRED_COLUMNS = ["id", "source", "our_sentiment", "our_churn", "stratum_size", "label_sentiment", "label_churn"]
SENTIMENT_LABELS = {"negative": "negative", "neg": "negative", "-": "negative", "neutral": "neutral",
                    "neu": "neutral", "0": "neutral", "positive": "positive", "pos": "positive", "+": "positive"}  # fmt: skip
CHURN_LABELS = {"yes": "yes", "y": "yes", "1": "yes", "true": "yes", "no": "no", "n": "no", "0": "no", "false": "no"}
REJECTS_SHOWN = 20


@dataclass
class SampleResult:
    """What `sample` drew: the file, and per stratum the scored posts in the window and the posts drawn."""

    path: Path
    event: str
    strata: dict[str, tuple[int, int]]  # stratum → (posts in the window, posts drawn)

    @property
    def drawn(self) -> int:
        return sum(drawn for _size, drawn in self.strata.values())


@dataclass(frozen=True)
class RowProblem:
    """A row of a labelled sample that could not be used: its line, the field at fault and why."""

    line: int
    field: str
    reason: str


@dataclass
class ValidationResult:
    """Our labels against the person's on one labelled sample, and the rows left out."""

    path: Path
    event: str
    rows: int = 0  # data rows read
    unlabelled: int = 0  # rows with neither label filled in (yet)
    changed: int = 0  # labelled rows whose label under the current scorer differs from the sampled one (ours)
    sentiment: Agreement | None = None
    churn: Agreement | None = None
    rejected: int = 0
    problems: list[RowProblem] = field(default_factory=list)  # the first REJECTS_SHOWN only


def sample_posts(ws: Workspace, event_name: str, n: int, out: Path, seed: int = 0) -> SampleResult:
    """Draw n of an event's scored posts in its window, evenly over the strata (our sentiment class × churn flag).

    Each stratum keeps a reservoir of at most n posts while the store is read, so memory is bounded by 6 n posts.
    """
    if n < 1:
        raise UsageError(f"--n {n}: must be at least 1")
    event = ws.config.event(event_name)
    refuse_overwriting(ws, out, "--out")
    start, end = ws.config.window_utc(event)
    reservoirs = _Reservoirs(n, random.Random(seed))
    for chunk in ws.store.iter_event_posts(event.name, current_scorer(ws)):
        for row in chunk:
            if row.get("status") == "scored" and start <= row["created_at"] < end:
                reservoirs.offer(stratum_of(row), row)
    counts = allocate(reservoirs.sizes, n)
    drawn = [(name, row) for name, rows in reservoirs.kept.items() for row in reservoirs.rng.sample(rows, counts[name])]
    reservoirs.rng.shuffle(drawn)  # strata mixed, so the person does not label a run of "churn" posts in a row
    _write_sample(out, [_sample_row(row, name, reservoirs.sizes[name]) for name, row in drawn])
    return SampleResult(out, event.name, {name: (reservoirs.sizes[name], counts[name]) for name in sorted(counts)})


class _Reservoirs:
    """Per stratum: how many posts were offered, and a uniform random sample of at most `size` of them."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng
        self.sizes: dict[str, int] = {}
        self.kept: dict[str, list[dict[str, Any]]] = {}

    def offer(self, stratum: str, row: dict[str, Any]) -> None:
        seen = self.sizes[stratum] = self.sizes.get(stratum, 0) + 1
        kept = self.kept.setdefault(stratum, [])
        if len(kept) < self.size:
            kept.append(row)
            return
        slot = self.rng.randrange(seen)  # Algorithm R: each post seen so far stays with probability size / seen
        if slot < self.size:
            kept[slot] = row


def sentiment_class(compound: float) -> str:
    """Our sentiment class of a compound score, at the thresholds every report uses."""
    from monitor.analysis import NEGATIVE_AT, POSITIVE_AT

    if compound <= NEGATIVE_AT:
        return "negative"
    return "positive" if compound >= POSITIVE_AT else "neutral"


def churn_class(flag: Any) -> str:
    return "yes" if flag else "no"


def stratum_of(row: dict[str, Any]) -> str:
    return f"{sentiment_class(row['compound'])}/churn-{churn_class(row['churn'])}"


def _sample_row(row: dict[str, Any], stratum: str, size: int) -> dict[str, Any]:
    from monitor.sources.archive import neutralise_cell

    return {
        "id": neutralise_cell(row["post_id"]),
        "source": row["source"],
        "created_at": row["created_at"].isoformat().replace("+00:00", "Z"),
        "author": neutralise_cell(row.get("author") or ""),
        "text": neutralise_cell(row["text"]),
        "our_sentiment": sentiment_class(row["compound"]),
        "our_churn": churn_class(row["churn"]),
        "stratum": stratum,
        "stratum_size": size,
        "label_sentiment": "",
        "label_churn": "",
    }


def _write_sample(out: Path, rows: list[dict[str, Any]]) -> None:
    from monitor.files import replacing

    with replacing(out) as temporary, temporary.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SAMPLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def validate_sample(ws: Workspace, path: Path, event_name: str) -> ValidationResult:
    """Read a labelled sample, compare the person's labels with ours (as sampled), store and return the agreement.

    A row with an unknown label, a bad weight or an id that is not a scored post of the event is left out
    and reported (the result is partial); a file without the needed columns or without a usable row is refused.
    """
    event = ws.config.event(event_name)
    scorer = current_scorer(ws) or ""
    result = ValidationResult(path=path, event=event.name)
    with recorded_run(ws.store, "validate", event.name, tally=lambda: (result.rows, 0, 0.0)) as run:
        rows = list(_read_rows(path, result))
        ours = ws.store.post_scores(event.name, scorer, [(row["source"], _restored(row["id"])) for _line, row in rows])
        sentiment, churn = _labelled(path, rows, ours, result, event.name)
        if not sentiment and not churn:
            raise UsageError(f"{path}: no labelled row to check (fill in label_sentiment and label_churn)")
        sizes = _stratum_sizes(rows)
        result.sentiment = agreement(sentiment, SENTIMENT_CLASSES, sizes) if sentiment else None
        result.churn = agreement(churn, CHURN_CLASSES, sizes) if churn else None
        ws.store.add_validation(event.name, scorer, path.name, max(len(sentiment), len(churn)), result_json(result))
        run.status = "partial" if result.rejected else "ok"
        run.message = f"{len(sentiment)} sentiment and {len(churn)} churn labels, {result.rejected} rejected"
    return result


def _read_rows(path: Path, result: ValidationResult) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a labelled sample, after checking it has the needed columns."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{path}: line 1: missing column {', '.join(missing)}")
        for row in reader:
            result.rows += 1
            yield reader.line_num, {key: (value or "").strip() for key, value in row.items() if key is not None}


def _labelled(
    path: Path,
    rows: list[tuple[int, dict[str, str]]],
    ours: dict[tuple[str, str], dict[str, Any]],
    result: ValidationResult,
    event: str,
) -> tuple[list[Labelled], list[Labelled]]:
    """The usable sentiment and churn labels; each unusable row noted once, by its first fault."""
    sentiment: list[Labelled] = []
    churn: list[Labelled] = []
    for line, row in rows:
        if not row.get("label_sentiment") and not row.get("label_churn"):
            result.unlabelled += 1
            continue
        problem = _row_problem(line, row, ours, event)
        if problem is not None:
            _reject(result, problem)
            continue
        now = ours[(row["source"], _restored(row["id"]))]
        result.changed += (sentiment_class(now["compound"]), churn_class(now["churn"])) != _ours(row)
        stratum = _stratum(row)
        if row["label_sentiment"]:
            theirs = SENTIMENT_LABELS[row["label_sentiment"].lower()]
            sentiment.append(Labelled(stratum, row["our_sentiment"], theirs))
        if row["label_churn"]:
            churn.append(Labelled(stratum, row["our_churn"], CHURN_LABELS[row["label_churn"].lower()]))
    return sentiment, churn


def _ours(row: dict[str, str]) -> tuple[str, str]:
    return row["our_sentiment"], row["our_churn"]


def _stratum(row: dict[str, str]) -> str:
    """A row's stratum, from the labels we gave it when it was drawn (the strata are those labels)."""
    return f"{row['our_sentiment']}/churn-{row['our_churn']}"


def _stratum_sizes(rows: list[tuple[int, dict[str, str]]]) -> dict[str, float]:
    """Each stratum's posts in the window, as the sample recorded them (the largest value a stratum's rows give)."""
    sizes: dict[str, float] = {}
    for _line, row in rows:
        if _is_size(row["stratum_size"]):
            sizes[_stratum(row)] = max(sizes.get(_stratum(row), 0.0), float(row["stratum_size"]))
    return sizes


def _row_problem(
    line: int, row: dict[str, str], ours: dict[tuple[str, str], dict[str, Any]], event: str
) -> RowProblem | None:
    sentiment, churn = row["label_sentiment"].lower(), row["label_churn"].lower()
    if sentiment and sentiment not in SENTIMENT_LABELS:
        return RowProblem(
            line, "label_sentiment", f"{row['label_sentiment']!r} is not one of negative, neutral, positive"
        )
    if churn and churn not in CHURN_LABELS:
        return RowProblem(line, "label_churn", f"{row['label_churn']!r} is not one of yes, no")
    if row["our_sentiment"] not in SENTIMENT_CLASSES:
        return RowProblem(
            line,
            "our_sentiment",
            f"{row['our_sentiment']!r} is not one of negative, neutral, positive (keep it as sampled)",
        )
    if row["our_churn"] not in CHURN_CLASSES:
        return RowProblem(line, "our_churn", f"{row['our_churn']!r} is not one of yes, no (keep it as sampled)")
    if not _is_size(row["stratum_size"]):
        return RowProblem(
            line, "stratum_size", f"{row['stratum_size']!r} is not a positive number (keep it as sampled)"
        )
    scored = ours.get((row["source"], _restored(row["id"])))
    if scored is None:
        return RowProblem(
            line, "id", f"{row['id']!r} (source {row['source']!r}) is not a post of event {event} in the store"
        )
    if scored["status"] != "scored":
        return RowProblem(line, "id", f"{row['id']!r} is not scored by the current scorer (run `backlash score`)")
    return None


def _restored(post_id: str) -> str:
    from monitor.sources.archive import restore_cell

    return restore_cell(post_id)


def _is_size(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def _reject(result: ValidationResult, problem: RowProblem) -> None:
    result.rejected += 1
    if len(result.problems) < REJECTS_SHOWN:
        result.problems.append(problem)


def result_json(result: ValidationResult) -> str:
    """What is stored of a validation: both agreements as JSON."""
    document = {
        "file": result.path.name,
        "rows": result.rows,
        "rejected": result.rejected,
        "changed_since_sampled": result.changed,
        "sentiment": asdict(result.sentiment) if result.sentiment else None,
        "churn": asdict(result.churn) if result.churn else None,
    }
    return json.dumps(document)


def latest_validation(ws: Workspace, event_name: str) -> dict[str, Any] | None:
    """The event's latest hand check: its numbers, when, on which file, and whether the scorer is still current."""
    stored = ws.store.latest_validation(event_name)
    if stored is None:
        return None
    checked: datetime = stored["validated_at"]
    return json.loads(stored["result"]) | {
        "validated_at": checked,
        "labelled": stored["labelled"],
        "current_scorer": stored["scorer"] == current_scorer(ws),
    }
