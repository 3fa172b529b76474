"""import → score → report → digest on archives shaped like real scraped ones (snscrape's columns): no ids,
no lang column, years of old uses of the hashtag, data that starts after the announcement, X's `&amp;`."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pandas as pd
from click.testing import CliRunner

from monitor.analysis import AnalysisAccumulator
from monitor.cli import cli
from monitor.config import load_config

from .conftest import BASE_CONFIG
from .workspaces import event_rows, workspace_on

EVENT = BASE_CONFIG["events"][0]["name"]
ANNOUNCED = datetime(2012, 12, 17, tzinfo=UTC)
SCRAPED_COLUMNS = ["author", "created_at", "likes", "client", "text"]  # snscrape's shape, without id and lang


def scraped_archive(path: Path, rows: list[tuple[datetime, str, int]]) -> Path:
    """A CSV in the shape of the shared archive: hashed authors, '+00:00' times, newest first."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(SCRAPED_COLUMNS)
        for number, (moment, text, likes) in enumerate(sorted(rows, reverse=True)):
            writer.writerow([f"u{number:010x}", moment.strftime("%Y-%m-%d %H:%M:%S+00:00"), likes, "Twitter Web App", text])
    return path


def run(config: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result


def storm(start: datetime, hours: int, per_hour: int, text: str = "instagram terms are awful, quit instagram") -> list[
    tuple[datetime, str, int]
]:
    return [
        (start + timedelta(hours=hour, minutes=minute), f"{text} #{hour}x{minute}", 0)
        for hour in range(hours)
        for minute in range(per_hour)
    ]


def summary(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "dashboards" / EVENT / "summary.json").read_text(encoding="utf-8"))


def page(tmp_path: Path) -> str:
    return (tmp_path / "dashboards" / EVENT / "index.html").read_text(encoding="utf-8")


def test_years_of_old_hashtag_uses_are_counted_not_charted(write_config: Callable[..., Path], tmp_path: Path) -> None:
    old = [(datetime(2010 + year, 3, 1 + day, 12, tzinfo=UTC), f"old instagram post {year} {day}", 1) for year in range(3) for day in range(20)]
    later = [(datetime(2014, 5, day + 1, tzinfo=UTC), f"much later instagram post {day}", 0) for day in range(5)]
    recent = storm(datetime(2012, 12, 11, tzinfo=UTC), 24, 2, "instagram is fine today") + storm(ANNOUNCED, 48, 6)
    config = write_config()
    run(config, "import", str(scraped_archive(tmp_path / "tag.csv", old + later + recent)), "--event", EVENT)
    run(config, "score")
    result = run(config, "report")

    found = summary(tmp_path)
    assert found["window"] == {"start": "2012-12-10T00:00:00Z", "end": "2013-01-30T00:00:00Z"}
    assert found["coverage"]["before_window"] == 60
    assert found["coverage"]["after_window"] == 5
    assert found["coverage"]["outside_window"] == 65
    assert found["coverage"]["posts"] == len(recent)
    assert found["bins"] <= (datetime(2012, 12, 19) - datetime(2012, 12, 11)).days * 24  # not 4 years of hours
    note = "60 posts before 10 Dec 2012 and 5 posts from 30 Jan 2013 on are outside the event window and not analysed."
    assert note in page(tmp_path)
    assert note in result.stderr


def test_a_far_dated_post_is_outside_the_window_not_binned(config: Any) -> None:
    event = config.events[0]
    accumulator = AnalysisAccumulator(event=event, milestones=config.milestones_utc(event), tz="UTC", alerts=config.alerts)
    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)]
    moments += [ANNOUNCED + timedelta(minutes=minute) for minute in range(50)]
    accumulator.add(pd.DataFrame({"created_at": moments, "text": ["instagram"] * len(moments), "source": "archive"}))
    analysis = accumulator.finish(generated_at=datetime.now(UTC))
    assert (analysis.coverage.before_window, analysis.coverage.after_window) == (1, 1)
    assert len(analysis.bins) == 1 and int(analysis.bins["volume"].sum()) == 50


def test_an_empty_baseline_is_said_and_nothing_is_called_times_the_baseline(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    quiet = storm(ANNOUNCED + timedelta(days=2), 72, 2, "instagram terms again")
    loud = storm(ANNOUNCED + timedelta(days=5), 3, 60)
    config = write_config()
    run(config, "import", str(scraped_archive(tmp_path / "late.csv", quiet + loud)), "--event", EVENT)
    run(config, "score")
    result = run(config, "report")

    sentence = "The baseline 10 Dec – 17 Dec 2012 holds 0 posts"
    assert sentence in result.stderr and "Import earlier posts or set baseline_days" in result.stderr
    html = page(tmp_path)
    assert sentence in html
    found = summary(tmp_path)
    assert found["baseline"]["posts"] == 0 and found["baseline_fallback"] is True
    assert found["spikes"], "the 60-an-hour storm over a 2-an-hour window is a spike"
    spikes = html.split("<h2 id=\"spikes\">Spikes</h2>")[1].split("<h2>")[0]
    assert "the window&#39;s median hour" in spikes and "the baseline" not in spikes

    run(config, "digest", "--dry-run", "--force")
    message = next((tmp_path / "dashboards" / EVENT).glob("digest-*.eml")).read_bytes()
    mail = BytesParser(policy=policy.default).parsebytes(message)
    text = mail.get_body(("plain",)).get_content()
    assert sentence in " ".join(text.split())
    assert "vs baseline" not in mail["Subject"] and "typical day before the announcement" not in text


def test_a_thin_baseline_is_said_with_its_count(write_config: Callable[..., Path], tmp_path: Path) -> None:
    thin = [(ANNOUNCED - timedelta(days=3, hours=hour), f"instagram today {hour}", 0) for hour in range(12)]
    config = write_config()
    run(config, "import", str(scraped_archive(tmp_path / "thin.csv", thin + storm(ANNOUNCED, 24, 5))), "--event", EVENT)
    run(config, "score")
    result = run(config, "report")
    assert "holds only 12 posts (fewer than 30)" in result.stderr
    assert summary(tmp_path)["baseline"]["posts"] == 12


def test_top_negative_posts_are_since_the_announcement(write_config: Callable[..., Path], tmp_path: Path) -> None:
    before = [(ANNOUNCED - timedelta(days=2, hours=n), f"this is a terrible awful hateful day {n}", 5000 + n) for n in range(8)]
    after = [(ANNOUNCED + timedelta(hours=n), f"instagram terms are horrible and bad {n}", 10 + n) for n in range(8)]
    baseline = storm(ANNOUNCED - timedelta(days=5), 10, 4, "instagram is fine")
    config = write_config()
    run(config, "import", str(scraped_archive(tmp_path / "top.csv", before + after + baseline)), "--event", EVENT)
    run(config, "score")
    run(config, "report")
    posts = summary(tmp_path)["top_posts"]
    assert len(posts) == 8
    assert all(post["created_at"] >= "2012-12-17T00:00:00Z" for post in posts)
    assert "terrible awful hateful" not in page(tmp_path)


def test_html_entities_are_decoded_once_on_import(write_config: Callable[..., Path], tmp_path: Path) -> None:
    rows = [(ANNOUNCED + timedelta(hours=1), "Terms &amp; conditions: Instagram can sell photos &lt;3 awful, hate it", 40)]
    config = write_config()
    archive = scraped_archive(tmp_path / "entities.csv", rows + storm(ANNOUNCED - timedelta(days=4), 10, 4, "instagram ok"))
    run(config, "import", str(archive), "--event", EVENT)
    ws = workspace_on(load_config(config))
    stored = [row["text"] for row in event_rows(ws.store, EVENT) if row["text"].startswith("Terms")]
    ws.close()
    assert stored == ["Terms & conditions: Instagram can sell photos <3 awful, hate it"]
    run(config, "score")
    run(config, "report")
    html = page(tmp_path)
    assert "Terms &amp; conditions: Instagram can sell photos &lt;3" in html and "&amp;amp;" not in html
    run(config, "digest", "--dry-run", "--force")
    message = next((tmp_path / "dashboards" / EVENT).glob("digest-*.eml")).read_bytes()
    text = BytesParser(policy=policy.default).parsebytes(message).get_body(("plain",)).get_content()
    assert "Terms & conditions" in text and "&amp;" not in text


def test_reimporting_a_scraped_archive_adds_nothing(write_config: Callable[..., Path], tmp_path: Path) -> None:
    rows = [(ANNOUNCED + timedelta(hours=n), f"Q&amp;A about instagram terms {n}", n) for n in range(5)]
    config = write_config()
    archive = scraped_archive(tmp_path / "again.csv", rows)
    run(config, "import", str(archive), "--event", EVENT)
    assert "new 0, duplicate 5" in run(config, "import", str(archive), "--event", EVENT).output


def test_untagged_short_english_is_scored_and_only_confident_guesses_excluded(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    texts = [
        "#TwitterIsDead",
        "Any one up?? #twitterisdead",
        "LMAO, AMAZING!",
        "WTF?",
        "bad mood. :'(",
        "Damn it Braves! Damn Damn Damn!",
        "Hot Take on Elon Musk. RT to beat shadow ban pls.",
        "I really don't like what they did with the new terms, it is awful",
        "No me gusta nada lo que hicieron con las nuevas condiciones, es horrible",
    ]
    rows = [(ANNOUNCED + timedelta(hours=n), text, 0) for n, text in enumerate(texts)]
    config = write_config()
    run(config, "import", str(scraped_archive(tmp_path / "untagged.csv", rows)), "--event", EVENT)
    run(config, "score")
    run(config, "report")
    coverage = summary(tmp_path)["coverage"]
    assert coverage["not_scored_language"] == 1 and coverage["languages_excluded"] == {"es": 1}
    assert coverage["scored"] == len(texts) - 1
    assert coverage["language_tagged"] == 0
    assert coverage["language_undetermined"] >= 2  # "#TwitterIsDead", "WTF?": too little left to tell
    assert coverage["language_guessed"] + coverage["language_undetermined"] == len(texts)
    assert "undetermined (too little text: kept and scored)" in page(tmp_path)


def test_report_before_score_says_how_many_posts_wait_for_score(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    posts = storm(datetime(2012, 12, 11, tzinfo=UTC), 24, 2, "instagram is fine today") + storm(ANNOUNCED, 48, 6)
    run(config, "import", str(scraped_archive(tmp_path / "tag.csv", posts)), "--event", EVENT)
    note = f"{len(posts):,} of {len(posts):,} posts are not scored yet: run `backlash score`."

    before = run(config, "report")
    assert note in before.stderr
    assert note in page(tmp_path)
    assert summary(tmp_path)["coverage"]["unscored"] == len(posts)
    assert summary(tmp_path)["coverage"]["not_scored_other"] == 0

    run(config, "score")
    after = run(config, "report")
    assert "not scored yet:" not in after.stderr and "not scored yet:" not in page(tmp_path)
    assert summary(tmp_path)["coverage"]["unscored"] == 0


def test_the_series_behind_the_charts_is_in_summary_json_and_exported(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    rows = storm(ANNOUNCED, 2, 3, "instagram terms are awful") + [(ANNOUNCED + timedelta(hours=3), "instagram is great", 0)]
    config = write_config(events=[{**BASE_CONFIG["events"][0], "bin": "hour"}])
    run(config, "import", str(scraped_archive(tmp_path / "s.csv", rows)), "--event", EVENT)
    run(config, "score")
    run(config, "report")
    series = summary(tmp_path)["series"]
    assert [(row["bin"], row["volume"], row["scored"]) for row in series] == [
        ("2012-12-17T00:00:00Z", 3, 3), ("2012-12-17T01:00:00Z", 3, 3), ("2012-12-17T02:00:00Z", 0, 0),
        ("2012-12-17T03:00:00Z", 1, 1),
    ]  # fmt: skip
    assert series[0]["negative_share"] == 1.0 and series[2]["mean_compound"] is None and series[3]["negative_share"] == 0.0
    out = tmp_path / "series.csv"
    assert "4 bins" in run(config, "export", "--event", EVENT, "--series", "--out", str(out)).output
    with out.open(encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert [row["volume"] for row in exported] == ["3", "3", "0", "1"] and exported[2]["mean_compound"] == ""
    assert exported[0]["bin"] == "2012-12-17T00:00:00+00:00" and float(exported[0]["negative_share"]) == 1.0
    # the archive's last post is at 03:00 sharp: its hour is partial, in the summary and in the export
    assert [row["partial"] for row in series] == [False, False, False, True]
    assert [row["partial"] for row in exported] == ["False", "False", "False", "True"]
    assert summary(tmp_path)["latest_bin"]["partial"] is True
