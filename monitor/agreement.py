"""Agreement of our labels with a person's, on a stratified sample: pure arithmetic, no I/O.

The sample over-represents rare strata (posts we flag as churn), so every estimate weights a stratum by its size
in the window, not by the posts drawn from it. Each stratum's share gets a 95 % Wilson interval; an estimate's
interval takes every stratum at the same end (for recall: the flagged strata at one end, the others at the
other), so it is conservative — wider than 95 % — and with one stratum it is that stratum's Wilson interval.
The posts we did not flag are the ones that bound recall: few of them are drawn, each standing for many.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

SENTIMENT_CLASSES = ("negative", "neutral", "positive")
CHURN_CLASSES = ("yes", "no")
Z_95 = 1.959963984540054
PERSON_SHARE = "the person's share of the window"


@dataclass(frozen=True)
class Labelled:
    """One sampled post: its stratum, the class we gave it and the class the person gave it."""

    stratum: str
    ours: str
    theirs: str


@dataclass(frozen=True)
class Estimate:
    """A share estimated over the window, with its (conservative) 95 % interval; None where nothing was measured."""

    value: float | None
    low: float | None
    high: float | None
    n: int  # labelled posts behind it


@dataclass(frozen=True)
class ClassAgreement:
    """Of the posts we put in a class, the share that belong (precision); of those that belong, the share we found (recall)."""

    name: str
    precision: Estimate
    recall: Estimate


@dataclass(frozen=True)
class Agreement:
    """Per-class precision and recall, the raw confusion counts (ours → theirs), and the person's share of each class."""

    classes: tuple[str, ...]
    labelled: int
    accuracy: Estimate
    per_class: list[ClassAgreement]
    confusion: dict[str, dict[str, int]]  # confusion[ours][theirs] = sampled posts
    true_share: dict[str, Estimate] = field(default_factory=dict)  # the person's class, over the window


@dataclass(frozen=True)
class _Stratum:
    """A stratum's size in the window and, for one question asked of its labelled posts, the share answering yes."""

    size: float
    labelled: int
    share: float
    low: float
    high: float


def wilson(share: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a share observed on n trials."""
    if n <= 0:
        return (0.0, 1.0)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _strata(items: Sequence[Labelled], sizes: Mapping[str, float], hit: Callable[[Labelled], bool]) -> list[_Stratum]:
    """Per stratum with labelled posts: its size and the share of them where hit is true, with its interval."""
    grouped: dict[str, list[Labelled]] = {}
    for item in items:
        grouped.setdefault(item.stratum, []).append(item)
    found = []
    for name, members in sorted(grouped.items()):
        share = sum(1 for item in members if hit(item)) / len(members)
        found.append(_Stratum(float(sizes[name]), len(members), share, *wilson(share, len(members))))
    return found


def _share(strata: Sequence[_Stratum]) -> Estimate:
    """The size-weighted share over these strata, each stratum's interval taken at the same end."""
    total = sum(stratum.size for stratum in strata)
    n = sum(stratum.labelled for stratum in strata)
    if total <= 0:
        return Estimate(None, None, None, n)

    def mean(pick: Callable[[_Stratum], float]) -> float:
        return sum(stratum.size * pick(stratum) for stratum in strata) / total

    return Estimate(mean(lambda s: s.share), mean(lambda s: s.low), mean(lambda s: s.high), n)


def _found_share(found: Sequence[_Stratum], missed: Sequence[_Stratum]) -> Estimate:
    """Of the posts that truly are in a class, the share in `found` strata: found ÷ (found + missed)."""

    def total(strata: Sequence[_Stratum], pick: Callable[[_Stratum], float]) -> float:
        return sum(stratum.size * pick(stratum) for stratum in strata)

    n = sum(stratum.labelled for stratum in found) + sum(stratum.labelled for stratum in missed)
    hit, miss = total(found, lambda s: s.share), total(missed, lambda s: s.share)
    if hit + miss <= 0:
        return Estimate(None, None, None, n)
    low_hit, high_miss = total(found, lambda s: s.low), total(missed, lambda s: s.high)
    high_hit, low_miss = total(found, lambda s: s.high), total(missed, lambda s: s.low)
    low = low_hit / (low_hit + high_miss) if low_hit + high_miss > 0 else 0.0
    high = high_hit / (high_hit + low_miss) if high_hit + low_miss > 0 else 1.0
    return Estimate(hit / (hit + miss), low, high, n)


def agreement(items: Sequence[Labelled], classes: Sequence[str], sizes: Mapping[str, float]) -> Agreement:
    """Precision, recall, accuracy and the person's class shares over the window; the confusion counts as sampled.

    sizes: each stratum's posts in the window. Within a stratum our class is one and the same.
    """
    confusion = {ours: {theirs: 0 for theirs in classes} for ours in classes}
    for item in items:
        confusion[item.ours][item.theirs] += 1
    per_class = [_class_agreement(items, sizes, name) for name in classes]
    accuracy = _share(_strata(items, sizes, lambda item: item.ours == item.theirs))
    true_share = {name: _share(_strata(items, sizes, _theirs_is(name))) for name in classes}
    return Agreement(tuple(classes), len(items), accuracy, per_class, confusion, true_share)


def _theirs_is(name: str) -> Callable[[Labelled], bool]:
    return lambda item: item.theirs == name


def _class_agreement(items: Sequence[Labelled], sizes: Mapping[str, float], name: str) -> ClassAgreement:
    ours = [item for item in items if item.ours == name]
    others = [item for item in items if item.ours != name]
    return ClassAgreement(
        name,
        precision=_share(_strata(ours, sizes, _theirs_is(name))),
        recall=_found_share(_strata(ours, sizes, _theirs_is(name)), _strata(others, sizes, _theirs_is(name))),
    )


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Posts to draw per stratum: n split as evenly as the strata allow, so rare strata are well represented.

    A stratum smaller than its even share gives all its posts, and what it cannot give goes to the others.
    """
    drawn = {name: 0 for name in sizes}
    left = min(n, sum(sizes.values()))
    while left > 0:
        open_strata = sorted(name for name in sizes if drawn[name] < sizes[name])
        share, extra = divmod(left, len(open_strata))
        for index, name in enumerate(open_strata):
            take = min(share + (1 if index < extra else 0), sizes[name] - drawn[name])
            drawn[name] += take
            left -= take
    return drawn


def adjusted_share(reported: float, precision: float | None, recall: float | None) -> float | None:
    """A share counted by the classifier, corrected for its errors: flagged × precision ÷ recall."""
    if precision is None or not recall:
        return None
    return reported * precision / recall


def describe(result: Agreement, title: str) -> list[str]:
    """The agreement as lines of text: per class precision and recall, then the confusion matrix."""
    lines = [f"{title}: {result.labelled} posts labelled by hand, agreement {_shown(result.accuracy)}"]
    lines.append(f"  {'class':<10} {'precision [95 %]':<22} {'recall [95 %]':<22} {PERSON_SHARE:<22}")
    for item in result.per_class:
        share = _shown(result.true_share[item.name], 3) if item.name in result.true_share else "—"
        lines.append(f"  {item.name:<10} {_shown(item.precision):<22} {_shown(item.recall):<22} {share:<22}")
    lines.append("  confusion (rows: ours, columns: the person's; posts sampled)")
    lines.append("  " + " " * 10 + "".join(f"{name:>10}" for name in result.classes))
    for ours in result.classes:
        lines.append(f"  {ours:<10}" + "".join(f"{result.confusion[ours][theirs]:>10}" for theirs in result.classes))
    return lines


def _shown(estimate: Estimate, digits: int = 2) -> str:
    if estimate.value is None or estimate.low is None or estimate.high is None:
        return "— (none)"
    return f"{estimate.value:.{digits}f} [{estimate.low:.{digits}f}, {estimate.high:.{digits}f}]"
