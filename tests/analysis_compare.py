"""Generated scored posts and a comparison of two Analysis objects, for the chunked and Dask paths' tests."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from monitor.analysis import Analysis

WORDS = [
    "ads",
    "photos",
    "sell",
    "privacy",
    "quit",
    "boycott",
    "lovely",
    "friends",
    "terms",
    "rights",
    "data",
    "angry",
    "fine",
    "share",
]


def generated_posts(count: int, seed: int = 7) -> pd.DataFrame:
    """Scored posts around the Instagram 2012 timeline: two sources, reposts, skipped languages, repeated texts."""
    rng = np.random.default_rng(seed)
    start = datetime(2012, 12, 8, tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 45 * 86400, count))
    storm = rng.random(count) < 0.5
    seconds = np.where(storm, 9 * 86400 + rng.integers(0, 4 * 86400, count), seconds)
    compound = np.round(rng.uniform(-1, 1, count) - 0.3 * storm, 4).clip(-1, 1)
    status = np.where(rng.random(count) < 0.1, "skipped:language", "scored")
    texts = [" ".join(rng.choice(WORDS, 4)) for _ in range(200)]  # few distinct texts: reposts, ties
    frame = pd.DataFrame(
        {
            "source": rng.choice(["x", "archive"], count),
            "post_id": [f"p{i:07d}" for i in range(count)],
            "created_at": [start + timedelta(seconds=int(s)) for s in seconds],
            "text": rng.choice(texts, count),
            "author": rng.choice(["a", "b", None], count),
            "lang": np.where(status == "scored", "en", "fr"),
            "likes": rng.integers(0, 5, count),
            "reposts": rng.integers(0, 3, count),
            "replies": 0,
            "followers": rng.integers(0, 5000, count),
            "url": None,
            "is_repost": rng.random(count) < 0.3,
            "is_quote": rng.random(count) < 0.1,
            "status": status,
            "compound": np.where(status == "scored", compound, np.nan),
            "churn": rng.random(count) < 0.05,
            "aspects": rng.choice(["", "ads", "photos", "ads,photos"], count),
        }
    )
    return frame.sort_values(["created_at", "source", "post_id"], kind="stable").reset_index(drop=True)


def assert_same_analysis(found: Analysis, expected: Analysis, rel: float = 1e-9) -> None:
    """Equal counts, terms and posts; floats equal up to summation order (rel)."""
    for name in ("bins", "per_source", "days_from", "distribution"):
        pd.testing.assert_frame_equal(getattr(found, name), getattr(expected, name), rtol=rel, check_dtype=False)
    mine, theirs = found.summary(), expected.summary()
    mine.pop("generated_at"), theirs.pop("generated_at")
    _assert_close(mine, theirs, rel, "summary")


def _assert_close(found: Any, expected: Any, rel: float, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(found, dict) and set(found) == set(expected), where
        for key in expected:
            _assert_close(found[key], expected[key], rel, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(found, list) and len(found) == len(expected), where
        for index, (mine, theirs) in enumerate(zip(found, expected, strict=True)):
            _assert_close(mine, theirs, rel, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(found, bool):
        assert isinstance(found, int | float) and math.isclose(found, expected, rel_tol=rel, abs_tol=1e-12), (
            f"{where}: {found} != {expected}"
        )
    else:
        assert found == expected, f"{where}: {found!r} != {expected!r}"
