"""Config loading: the shipped file is valid; every kind of mistake is one line naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

from .conftest import BASE_CONFIG

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config.yaml")
    event = config.event("instagram-tos-2012")
    milestones = config.milestones_utc(event)
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
