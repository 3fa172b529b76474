"""Config loading: the shipped file is valid; every kind of mistake is one line naming the field."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from monitor.cli import MAX_WORKERS as CLI_MAX_WORKERS
from monitor.cli import cli
from monitor.config import MAX_WORKERS, Config, load_config, parse_config, settings_reference
from monitor.errors import ConfigError
from monitor.pipeline import demo_config

from .conftest import BASE_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_a_template_for_a_live_event(tmp_path: Path) -> None:
    """config.yaml watches a change as it happens: live sources, X's 7-day search; `status` accepts it."""
    config = load_config(ROOT / "config.yaml")
    (event,) = config.events
    assert not event.simulated and event.query
    assert event.sources == ["x", "bluesky", "mastodon"]
    assert config.sources.x.endpoint == "recent"
    assert config.email.recipients
    assert max(config.milestones_utc(event).values()) > datetime(2026, 11, 30, tzinfo=UTC)  # not 2012's case
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    for setting in ("name", "platform", "milestones", "query", "recipients"):
        marked = re.search(rf"# EDIT[^\n]*\n(?:\s*#[^\n]*\n)*\s*-? ?{setting}:|{setting}:[^\n]*# EDIT", text)
        assert marked, f"config.yaml does not mark `{setting}` as one to edit"
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "config.yaml"), "status"])
    assert result.exit_code == 0, result.output
    assert f"{event.name}: 0 posts" in result.output


def test_the_demo_keeps_the_2012_case_without_a_config_file(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    milestones = config.milestones_utc(config.event("instagram-tos-2012"))
    assert milestones["announced"] == datetime(2012, 12, 17, tzinfo=UTC)
    assert milestones["reversed"] == datetime(2012, 12, 20, tzinfo=UTC)
    assert milestones["effective"] == datetime(2013, 1, 16, tzinfo=UTC)


def test_dates_are_midnight_in_config_zone_and_datetimes_keep_offset() -> None:
    event = {**BASE_CONFIG["events"][0], "milestones": {"announced": "2012-12-17", "effective": "2012-12-18T22:00:00Z"}}
    config = parse_config({**BASE_CONFIG, "timezone": "America/Los_Angeles", "events": [event]})
    milestones = config.milestones_utc(config.events[0])
    assert milestones["announced"].astimezone(UTC) == datetime(2012, 12, 17, 8, tzinfo=UTC)
    assert milestones["effective"] == datetime(2012, 12, 18, 22, tzinfo=UTC)


def _with_event(**changes: object) -> dict[str, object]:
    event = {**BASE_CONFIG["events"][0], **changes}
    return {**BASE_CONFIG, "events": [event]}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({**BASE_CONFIG, "databse": "x"}, "databse: unknown setting"),
        (
            _with_event(milestones={"announced": "2012-12-17", "effective": "2012-13-45"}),
            "events[0].milestones.effective",
        ),
        (
            _with_event(milestones={"announced": "2012-12-20", "effective": "2012-12-17"}),
            "events[0].milestones.announced",
        ),
        (_with_event(milestones={"effective": "2012-12-17"}), "events[0].milestones: needs an `announced` milestone"),
        (
            {**BASE_CONFIG, "events": [{k: v for k, v in BASE_CONFIG["events"][0].items() if k != "name"}]},
            "events[0].name: is required",
        ),
        (_with_event(sources=["x", "myspace"]), "events[0].sources: unknown source 'myspace'"),
        ({**BASE_CONFIG, "timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
        ({**BASE_CONFIG, "schedule": {"collect_every": "soon"}}, "schedule.collect_every"),
        ({**BASE_CONFIG, "email": {"security": "tls13"}}, "email.security"),
        (
            {
                **BASE_CONFIG,
                "events": [{**{k: v for k, v in BASE_CONFIG["events"][0].items() if k != "milestones"}, "milestone": {}}],
            },
            "events[0].milestone: unknown setting (did you mean milestones?)",
        ),
        ({**BASE_CONFIG, "databse": "x"}, "databse: unknown setting (did you mean database?)"),
        ({**BASE_CONFIG, "events": []}, "events: add at least one event"),
        (_with_event(bin="week"), "events[0].bin"),
    ],
)
def test_mistakes_name_the_field(document: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_event_without_sources_is_fed_by_imports() -> None:
    config = parse_config(_with_event(sources=[]))
    assert config.events[0].sources == []


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("database: sqlite:///x.db\nevents:\n  - name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config.yaml line \d+"):
        load_config(path)


ONE_EVENT = "events:\n  - {name: e, platform: P, milestones: {announced: 2012-12-17}}\n"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("schedule: {collect_every: -60}", "schedule.collect_every: -60 must be longer than zero"),
        ("schedule: {collect_every: 0}", "schedule.collect_every: 0 must be longer than zero"),
        ("schedule: {collect_every: .inf}", "schedule.collect_every: inf is not a finite duration"),
        ("schedule: {collect_every: '99999999999d'}", "schedule.collect_every: '99999999999d' is far too long"),
        ("schedule: {collect_every: 2d}", "schedule.collect_every: 2d is out of range: the most allowed is 1 day"),
        ("schedule: {misfire_grace: .inf}", "schedule.misfire_grace: inf is not a finite duration"),
        (
            "schedule: {misfire_grace: 1000000000000}",
            "schedule.misfire_grace: 1000000000000s is out of range: the most allowed is 1 day",
        ),
        ("alerts: {cooldown: -1}", "alerts.cooldown: -1 must be longer than zero"),
        ("alerts: {cooldown: 10s}", "alerts.cooldown: 10s is out of range: the least allowed is 1 minute"),
        ("alerts: {z_threshold: .nan}", "alerts.z_threshold: nan is not a finite number"),
        ("alerts: {min_volume: -1}", "alerts.min_volume: -1 is out of range: the least allowed is 0"),
        (
            "scoring: {chunk_size: 1000000000000000000000}",
            "scoring.chunk_size: 1000000000000000000000 is out of range: the most allowed is 1000000",
        ),
        ("scoring: {workers: 100000}", "scoring.workers: 100000 is out of range: the most allowed is 256"),
        ("scoring: {lexicon: {boycott: -40}}", "scoring.lexicon.boycott: -40 is out of range: the least allowed is -4"),
        ("sources: {x: {timeout: 0.001}}", "sources.x.timeout: 0.001s is out of range: the least allowed is 1 second"),
        ("sources: {x: {max_posts_per_run: 1e30}}", "sources.x.max_posts_per_run: "),
        (
            "sources: {mastodon: {min_remaining_requests: 1000}}",
            "sources.mastodon.min_remaining_requests: 1000 is out of range: the most allowed is 300",
        ),
        ("email: {timeout: 99999999999d}", "email.timeout: '99999999999d' is far too long"),
    ],
)
def test_every_duration_and_count_is_bounded_exit_2_naming_it(tmp_path: Path, section: str, expected: str) -> None:
    assert_config_error(tmp_path, f"{ONE_EVENT}{section}\n", expected)


def assert_config_error(tmp_path: Path, text: str, expected: str) -> None:
    """`status` on a config.yaml holding `text` stops with exit 2 and one line: the file, then `expected`."""
    config = tmp_path / "config.yaml"
    config.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {config}: {expected}")
    assert len(result.output.strip().splitlines()) == 1


def test_every_bounded_setting_shows_its_range_in_the_readme_table() -> None:
    for path, _, description in settings_reference():
        info = _field_info(path)
        if any(hasattr(rule, "ge") or hasattr(rule, "le") for rule in info.metadata):
            assert re.search(r"; from \S+ to \S+$", description), path
    assert MAX_WORKERS == CLI_MAX_WORKERS


def _field_info(path: str) -> FieldInfo:
    model: type[BaseModel] = Config
    *sections, name = path.replace("[]", "").split(".")
    for section in sections:
        annotation = model.model_fields[section].annotation
        model = next(iter(get_args(annotation)), annotation)  # a list of sections (events, notify): its item
    return model.model_fields[name]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            "milestones: {announced: 0001-01-01}",
            "events[0].milestones.announced: '0001-01-01' is outside 1990-01-01 to 2100-01-01",
        ),
        (
            "milestones: {announced: 2012-12-17, effective: 9999-12-31}",
            "events[0].milestones.effective: '9999-12-31' is outside 1990-01-01 to 2100-01-01",
        ),
        ("milestones: {announced: '9999-12-31T23:00:00-05:00'}", "events[0].milestones.announced: '9999-12-31T23:00"),
        ("milestones: {announced: 2012-12-17}, start: 0001-01-01", "events[0].start: '0001-01-01' is outside"),
        ("milestones: {announced: 2012-12-17}, end: 2999-01-01", "events[0].end: '2999-01-01' is outside"),
    ],
)
def test_dates_outside_1990_to_2100_are_refused_naming_the_field(tmp_path: Path, event: str, expected: str) -> None:
    assert_config_error(tmp_path, f"events:\n  - {{name: e, platform: P, {event}}}\n", expected)


@pytest.mark.parametrize("name", [".", "..", "-rf", "_x", "a" * 65, "x\n", "two words", ""])
def test_an_event_name_must_start_with_a_letter_or_digit_and_be_64_characters_at_most(
    name: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_with_event(name=name)), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(path), "status"])
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"error: {path}: events[0].name: ")
    assert "must start with a letter or digit, then letters, digits, '.', '_' or '-', at most 64 characters" in line


@pytest.mark.parametrize("name", ["a" * 64, "instagram-tos-2012", "2012.x_y"])
def test_good_event_names_pass(name: str) -> None:
    assert parse_config(_with_event(name=name)).events[0].name == name


def test_an_import_source_name_follows_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**BASE_CONFIG, "database": f"sqlite:///{tmp_path}/t.db"}), encoding="utf-8")
    archive = tmp_path / "posts.csv"
    archive.write_text("created_at,text\n2012-12-17T10:00:00Z,hello\n", encoding="utf-8")
    command = ["--config", str(path), "import", str(archive), "--event", "instagram-tos-2012", "--source", "s" * 200]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2
    assert result.output.startswith("error: --source 'ssss") and "at most 64 characters" in result.output


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 * *", "schedule.report_cron: '0 * *' needs 5 fields"),
        ("61 * * * *", "schedule.report_cron: minute '61' is outside 0-59"),
        ("0 8 * * funday", "schedule.report_cron: weekday 'funday' is outside 0-7 or sun-sat"),
        ("*/0 * * * *", "schedule.report_cron: minute '*/0' is not crontab syntax"),
        ("0 8 * 13 *", "schedule.report_cron: month '13' is outside 1-12 or jan-dec"),
    ],
)
def test_a_bad_crontab_is_exit_2_at_load_naming_the_setting(tmp_path: Path, cron: str, expected: str) -> None:
    assert_config_error(tmp_path, f"{ONE_EVENT}schedule: {{report_cron: '{cron}'}}\n", expected)


@pytest.mark.parametrize("cron", ["0 8 * * 1-5", "*/15 * * * *", "0 0 1 jan-jun mon,wed", "*/2 * * * * *", "0 8 * * 7"])
def test_good_crontabs_load(cron: str) -> None:
    document = {**BASE_CONFIG, "schedule": {"report_cron": cron}}
    assert parse_config(document).schedule.report_cron == cron
