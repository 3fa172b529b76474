"""top_rows finds its candidates with numpy before sorting: on random frames it keeps exactly the rows a plain sort keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.examples import BIN_ENGAGED, BIN_NEGATIVE, BY_NEGATIVITY, POOL, Keep, top_rows


def plain_top(posts: pd.DataFrame, keep: Keep, same: str, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The rule top_rows follows, written the simple way: sort everything, first of each value, the first size."""
    among = posts if rows is None else posts[rows]
    ranked = among.sort_values(list(keep.order), ascending=list(keep.order.values()), kind="stable")
    if keep.per is None:
        return ranked.drop_duplicates(same).head(keep.size)
    return ranked.drop_duplicates([keep.per, same]).groupby(keep.per, sort=False).head(keep.size)


def random_posts(generator: np.random.Generator, size: int, missing: bool) -> pd.DataFrame:
    """Posts with many ties (few engagement and compound values, shared times), copies of texts, a few bins."""
    times = pd.Timestamp("2012-12-18") + pd.to_timedelta(generator.integers(0, 6, size), unit="h")
    compound = generator.choice([-0.9, -0.5, 0.0, 0.3], size)
    posts = pd.DataFrame(
        {
            "engagement": generator.integers(0, 4, size).astype(float),
            "compound": compound,
            "created_at": times,
            "source": generator.choice(["x", "bluesky"], size),
            "post_id": [f"p{number}" for number in generator.permutation(size)],
            "text": generator.choice([f"text {number}" for number in range(max(1, size // 3))], size),
            "bin": generator.integers(0, 3, size),
        }
    )
    if missing:
        posts.loc[generator.integers(0, size, 2), "compound"] = np.nan
    return posts


@pytest.mark.parametrize("keep", [POOL, Keep(3), Keep(2, BY_NEGATIVITY), BIN_ENGAGED, BIN_NEGATIVE, Keep(1, per="bin")])
def test_top_rows_keeps_what_a_plain_sort_keeps(keep: Keep) -> None:
    generator = np.random.default_rng(20121217)
    for trial in range(60):
        posts = random_posts(generator, int(generator.integers(1, 400)), missing=trial % 5 == 0)
        mask = generator.random(len(posts)) < 0.6 if trial % 2 else None
        expected = plain_top(posts, keep, "text", mask)
        found = top_rows(posts, keep, "text", mask)
        pd.testing.assert_frame_equal(found, expected)
