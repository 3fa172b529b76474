"""`sample` and `validate`: a stratified sample written, labelled by "a person" (the test), read back; the
agreement stored, printed and shown beside the churn share, against numbers worked out by hand."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.agreement import CHURN_CLASSES, Labelled, adjusted_share, agreement, allocate, wilson
from monitor.cli import cli
from monitor.pipeline import open_workspace
from monitor.posts import Post

EVENT = "instagram-tos-2012"
# our classes of these texts (VADER compound and the churn patterns): stratum → (text, posts in the window)
STRATA = {
    "negative/churn-no": ("These terms are terrible and awful", 40),
    "neutral/churn-no": ("Instagram changed its terms today", 40),
    "positive/churn-no": ("I love these wonderful new terms", 40),
    "negative/churn-yes": ("This is awful, I am deleting my instagram account", 4),
    "neutral/churn-yes": ("I am deleting my instagram account today", 4),
}
# what the person says of the 4 posts drawn from each stratum, in the order they appear in the file
LABELS = {
    "negative/churn-no": [("negative", "no")] * 3 + [("neutral", "yes")],  # a churn post we missed
    "neutral/churn-no": [("neutral", "no")] * 4,
    "positive/churn-no": [("positive", "no")] * 4,
    "negative/churn-yes": [("negative", "yes")] * 3 + [("negative", "no")],
    "neutral/churn-yes": [("neutral", "yes")] * 2 + [("neutral", "no")] * 2,
}


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def store_and_score(config: Path) -> None:
    ws = open_workspace(config)
    after = datetime(2012, 12, 18, tzinfo=UTC)
    posts = [
        Post(source="archive", id=f"{stratum}-{n}", created_at=after + timedelta(minutes=n), text=f"{text}")
        for stratum, (text, size) in STRATA.items()
        for n in range(size)
    ]
    # outside the window: never sampled
    posts += [
        Post(source="archive", id=f"old-{n}", created_at=datetime(2012, 6, 1, tzinfo=UTC), text="awful")
        for n in range(5)
    ]
    ws.store.add_posts(EVENT, posts)
    ws.close()
    assert run(config, "score").exit_code == 0


def read_sample(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_sample(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def label(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fill in label_sentiment and label_churn as LABELS says, stratum by stratum in file order."""
    taken: dict[str, int] = {}
    for row in rows:
        index = taken[row["stratum"]] = taken.get(row["stratum"], -1) + 1
        row["label_sentiment"], row["label_churn"] = LABELS[row["stratum"]][index]
    return rows


@pytest.fixture
def labelled(write_config: Callable[..., Path], tmp_path: Path) -> tuple[Path, Path]:
    config = write_config()
    store_and_score(config)
    out = tmp_path / "sample.csv"
    result = run(config, "sample", "--event", EVENT, "--n", "20", "--out", str(out))
    assert result.exit_code == 0, result.output
    return config, write_sample(tmp_path / "labelled.csv", label(read_sample(out)))


def test_sample_draws_evenly_from_each_stratum_of_the_window(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    store_and_score(config)
    out = tmp_path / "sample.csv"
    result = run(config, "sample", "--event", EVENT, "--n", "20", "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = read_sample(out)
    assert len(rows) == 20 and len({row["id"] for row in rows}) == 20
    assert {row["stratum"] for row in rows} == set(STRATA)
    for stratum, (text, size) in STRATA.items():
        mine = [row for row in rows if row["stratum"] == stratum]
        assert len(mine) == 4 and {row["text"] for row in mine} == {text}
        assert {row["stratum_size"] for row in mine} == {str(size)}
        assert {f"{row['our_sentiment']}/churn-{row['our_churn']}" for row in mine} == {stratum}
    assert all(row["label_sentiment"] == row["label_churn"] == "" for row in rows)
    assert not any(row["id"].startswith("old-") for row in rows)
    assert "negative/churn-yes" in result.output and "4 of 4" in result.output
    again = tmp_path / "again.csv"
    run(config, "sample", "--event", EVENT, "--n", "20", "--out", str(again))
    assert again.read_bytes() == out.read_bytes()  # same seed, same sample


def test_validate_stores_prints_and_reports_the_hand_worked_agreement(
    labelled: tuple[Path, Path], tmp_path: Path
) -> None:
    config, path = labelled
    result = run(config, "validate", str(path), "--event", EVENT)
    assert result.exit_code == 0, result.output
    # churn: flagged strata 4 + 4 posts, 3/4 and 2/4 say yes → precision 5/8; 1 of 4 unflagged negative
    # posts says yes, standing for 40 → 10 missed: recall 5 / 15; true share 15 / 128
    assert "yes        0.62 [" in result.output and "0.33 [" in result.output
    assert "confusion" in result.output
    ws = open_workspace(config)
    stored = ws.store.latest_validation(EVENT)
    ws.close()
    assert stored is not None and stored["labelled"] == 20 and stored["file"] == "labelled.csv"
    numbers = json.loads(stored["result"])
    churn = {item["name"]: item for item in numbers["churn"]["per_class"]}
    assert churn["yes"]["precision"]["value"] == pytest.approx(5 / 8)
    assert churn["yes"]["recall"]["value"] == pytest.approx(1 / 3)
    assert numbers["churn"]["true_share"]["yes"]["value"] == pytest.approx(15 / 128)
    assert numbers["churn"]["confusion"] == {"yes": {"yes": 5, "no": 3}, "no": {"yes": 1, "no": 11}}
    sentiment = {item["name"]: item for item in numbers["sentiment"]["per_class"]}
    assert sentiment["negative"]["precision"]["value"] == pytest.approx(34 / 44)  # 40 × 3/4 + 4 × 4/4 of 44
    assert sentiment["negative"]["recall"]["value"] == pytest.approx(1.0)
    assert sentiment["neutral"]["recall"]["value"] == pytest.approx(44 / 54)  # 10 neutral posts among our negatives
    assert numbers["sentiment"]["confusion"]["negative"] == {"negative": 7, "neutral": 1, "positive": 0}
    low = (4 * wilson(3 / 4, 4)[0] + 4 * wilson(2 / 4, 4)[0]) / 8
    assert churn["yes"]["precision"]["low"] == pytest.approx(low)

    assert run(config, "report", "--event", EVENT).exit_code == 0
    summary = json.loads((tmp_path / "dashboards" / EVENT / "summary.json").read_text(encoding="utf-8"))
    assert summary["totals"]["since_announced"]["churn_share"] == pytest.approx(8 / 128)
    # flagged 8/128 × precision 5/8 ÷ recall 1/3 = 15/128, the person's share: the adjustment undoes our errors
    assert summary["churn_share_adjusted"]["value"] == pytest.approx(15 / 128)
    assert summary["validation"]["labelled"] == 20 and summary["validation"]["current_scorer"] is True
    page = (tmp_path / "dashboards" / EVENT / "index.html").read_text(encoding="utf-8")
    high = (4 * wilson(3 / 4, 4)[1] + 4 * wilson(2 / 4, 4)[1]) / 8
    assert f"churn intent checked by hand on 20 posts: precision {5 / 8:.2f} [{low:.2f}, {high:.2f}]" in page
    assert f"{15 / 128:.2%}" in page and "an estimate" in page
    in_short = next(line for line in page.splitlines() if "Say they will leave:" in line)  # the verdict's line
    assert "churn intent checked by hand on 20 posts: precision" in in_short and f"{15 / 128:.2%}" in in_short
    assert "a lower bound" not in in_short  # a checked share is no longer only a floor


def test_a_bad_label_is_named_by_line_and_field_and_the_good_rows_are_used(labelled: tuple[Path, Path]) -> None:
    config, path = labelled
    rows = read_sample(path)
    rows[1]["label_churn"] = "maybe"
    rows[4]["id"] = "no-such-post"
    write_sample(path, rows)
    result = run(config, "validate", str(path), "--event", EVENT)
    assert result.exit_code == 3, result.output
    assert f"{path}: line 3: label_churn: 'maybe' is not one of yes, no" in result.output
    assert (
        f"{path}: line 6: id: 'no-such-post' (source 'archive') is not a post of event {EVENT} in the store"
        in result.output
    )
    ws = open_workspace(config)
    stored = ws.store.latest_validation(EVENT)
    ws.close()
    assert stored is not None and stored["labelled"] == 18


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda rows: [{k: v for k, v in row.items() if k != "label_churn"} for row in rows],
            "line 1: missing column label_churn",
        ),
        (lambda rows: [row | {"label_sentiment": "", "label_churn": ""} for row in rows], "no labelled row to check"),
    ],
)
def test_a_file_that_cannot_be_checked_is_refused_in_one_line(
    labelled: tuple[Path, Path], change: Callable[[list[dict[str, str]]], list[dict[str, str]]], message: str
) -> None:
    config, path = labelled
    write_sample(path, change(read_sample(path)))
    result = run(config, "validate", str(path), "--event", EVENT)
    assert result.exit_code == 2
    assert result.output == f"error: {path}: {message}" + (
        "\n" if "missing" in message else " (fill in label_sentiment and label_churn)\n"
    )


def test_wilson_matches_the_published_interval() -> None:
    low, high = wilson(8 / 10, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)  # Wilson (1927); Newcombe (1998), 8 of 10
    assert wilson(0.0, 0) == (0.0, 1.0)


def test_one_stratum_gives_plain_wilson_and_recall_counts_the_unflagged_strata() -> None:
    items = [Labelled("flagged", "yes", "yes")] * 4 + [Labelled("flagged", "yes", "no")]
    items += [Labelled("rest", "no", "yes")] + [Labelled("rest", "no", "no")] * 9
    result = agreement(items, CHURN_CLASSES, {"flagged": 10, "rest": 1000})
    yes = result.per_class[0]
    assert yes.precision.value == pytest.approx(0.8)
    assert (yes.precision.low, yes.precision.high) == pytest.approx(wilson(0.8, 5))
    assert yes.recall.value == pytest.approx(8 / 108)  # 10 × 4/5 found, 1000 × 1/10 missed
    assert yes.recall.low is not None and yes.recall.high is not None
    assert yes.recall.low < 8 / 108 < yes.recall.high
    assert result.true_share["yes"].value == pytest.approx(108 / 1010)


def test_allocation_spreads_what_small_strata_cannot_give() -> None:
    assert allocate({"a": 3, "b": 100, "c": 100}, 10) == {"a": 3, "b": 4, "c": 3}
    assert allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}
    assert sum(allocate({"a": 7, "b": 9, "c": 1000}, 200).values()) == 200


def test_the_adjusted_share_undoes_precision_and_recall() -> None:
    assert adjusted_share(0.1, 0.8, 0.5) == pytest.approx(0.16)
    assert adjusted_share(0.1, None, 0.5) is None and adjusted_share(0.1, 0.8, 0.0) is None
    assert math.isclose(adjusted_share(0.0625, 5 / 8, 1 / 3) or 0, 15 / 128)
