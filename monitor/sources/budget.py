"""What a metered (paid) source may read in one run: its per-run cap and what is left of the month's budget.

A source is metered when its config section has a `monthly_post_budget` (today X's). The rule knows nothing
of the collect verb: it returns an allowance, or the reason nothing may be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Allowance:
    """Posts a run may read (None: the source is not metered), or why it may read none."""

    posts: int | None
    refused: str | None = None


def allowance(settings: Any, read_this_month: Callable[[], int]) -> Allowance:
    """The allowance of one run of a source with these settings; `read_this_month` is asked only if metered."""
    budget = getattr(settings, "monthly_post_budget", None)
    if budget is None:
        return Allowance(None)
    read = read_this_month()
    remaining = budget - read
    if remaining <= 0:
        return Allowance(0, f"monthly budget of {budget} posts spent ({read} read)")
    return Allowance(min(settings.max_posts_per_run, remaining))
