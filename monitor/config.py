"""config.yaml → validated settings objects; every error names the field path it is about.

Each setting is declared once here, with its default and a description; the YAML only overrides.
Secrets never live in the file: `*_env` settings name environment variables.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError
from monitor.posts import EARLIEST_POST

DEFAULT_CONFIG = "config.yaml"
KNOWN_SOURCES = ("x", "bluesky", "mastodon", "reddit", "simulated")
_OTHER_PLATFORMS = (
    r"(flickr|twitter|tumblr|vsco|eyeem|pinterest|facebook|snapchat|bluesky|mastodon|threads|pixelfed|tiktok"
    r"|vero|ello|google\+?|500px|glass|instagram|x|hive|counter\s?social|post\.news|tribel|spoutible|cohost"
    r"|truth\s?social|gab|parler|gettr|discord|reddit|linkedin|youtube)(?:social)?\b"
)
# Churn intent is a first-person statement (or a conditional threat) of leaving, never a report, a question,
# advice to others or a hashtag alone: patterns name the author as subject, or stand at a sentence's start
# where the subject is implied ("Deleting my account tonight."). monitor/churn.py skips questions and
# matches preceded by a third-person subject or a negation. Measured in docs/numbers.md ("Churn intent").
_SELF = r"\b(?:i|we)(?:['’]?m|['’]ll|['’]d|['’]ve|['’]re| am| will| would| are| have| shall)?"
_MODAL = (
    r"(?:(?:am|are|will|would|shall|should|could|might|may|must|can|gonna|going|about|have|has|need|want|plan"
    r"|planning|considering|consider|thinking|think|seriously|finally|officially|just|really|definitely|probably"
    r"|soon|now|be|so|also|then|hereby|ready|inclined|tempted|of|to|actually|literally|totally|already|on)\s+){0,4}"
)
_LEAVE = r"(?:leav(?:e|ing)|left|quit(?:ting)?|delet(?:e|ed|ing)|deactivat(?:e|ed|ing)|clos(?:e|ed|ing)|abandon(?:ing)?|ditch(?:ing)?|(?:get|getting|come|coming|log|logging|sign|signing)\s+off)"
_TARGET = (
    r"(?:\s+(?:from|off|of|on))?\s+(?:(?:my|our|the|this)\s+)?(?:@?{platform}\b|(?:app|platform|site|place|hellsite)\b"
    r"|(?:\w+\s+)?(?:account|profile)s?\b)"
)
_CLAUSE_END = r"(?=\s*(?:[,.!;:)]|$|\s+(?:soon|now|for good|too|today|tonight|tomorrow|asap|then)\b))"
_NOT_A_SUBJECT = r"(?!\s+(?:is|was|isn['’]t|would|will|has|seems|sounds|means)\b)"  # "Leaving Twitter is the new ..."
_OPENING = r"(?:^|[,;:–—]\s*|\s[-–]\s+)\W*(?:(?:just|finally|officially|welp|well|ok|okay|so|and|now|today|tonight|seriously|time to|it['’]?s time to|going to|gonna|about to|think|done)\W+){0,3}"
DEFAULT_CHURN_PATTERNS = [
    _SELF + r"\s+" + _MODAL + _LEAVE + _TARGET,  # I'm deleting my account / we are leaving twitter
    _SELF + r"\s+" + _MODAL + r"(?:leav(?:e|ing)|quit(?:ting)?)" + _CLAUSE_END,  # I'm inclined to leave.
    r"\bi['’]?m\s+(?:so\s+|just\s+|officially\s+|definitely\s+|seriously\s+)?(?:out(?!\s+(?:of|for|with|in|on|there)\b(?!\s+here))|outta\s+here|out\s+of\s+here|gone|done\s+with\s+(?:@?{platform}|this\s+(?:app|platform|place|site)))\b",
    _SELF + r"\s+" + _MODAL + r"(?:say(?:ing)?\s+good\s*bye|shut(?:ting)?\s+(?:this|it|my\s+\w+)\s+down|never\s+(?:use|using|open|post\w*\s+on)\s+{platform}\s+again|(?:come|coming|get|getting)\s+off\s+{platform})",
    _OPENING + _LEAVE + _TARGET + _NOT_A_SUBJECT,  # sentence start, subject implied: "Deleting my account tonight."
    r"\b(?:it['’]?s|it\s+is)\s+(?:high\s+)?time\s+(?:for\s+me\s+)?to\s+" + _LEAVE + _TARGET,  # ... I think it's time to leave
    _OPENING + r"(?:mov(?:e|ing)|switch(?:ing)?|migrat(?:e|ing)|head(?:ing)?|jump(?:ing)?\s+ship)\s+(?:over\s+|back\s+)?to\s+#?(?!{platform}\b)" + _OTHER_PLATFORMS,
    _SELF + r"\s+" + _MODAL + r"(?:mov(?:e|ing)|switch(?:ing)?|migrat(?:e|ing)|head(?:ing)?|join(?:ed|ing)?)\s+(?:over\s+|back\s+)?(?:to\s+)?#?(?!{platform}\b)" + _OTHER_PLATFORMS,
    r"^\W*(?:just\s+)?joined\s+#?(?!{platform}\b)" + _OTHER_PLATFORMS,
    r"\b(?:see\s+(?:you|ya|y['’]?all)|find\s+me|catch\s+me|join\s+me|be\s+found|reach\s+me)\s+(?:all\s+)?(?:on|over\s+on|at|over\s+at|in)\s+#?(?!{platform}\b)" + _OTHER_PLATFORMS,
    r"\bmy\s+(?:very\s+)?(?:last|final)\s+(?:tweet|post|toot)s?\b",
    r"\b(?:good\s*bye|bye(?:\s+bye)?|farewell|so\s+long|adios)\s+@?{platform}\b",
    r"\bit\s+was\s+(?:nice|fun|good|great)\s+(?:knowing\s+you|while\s+it\s+lasted)",
]
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def one_line(value: str) -> str:
    """Runs of whitespace (the newline a folded YAML `>` ends with, tabs) as one space, the ends trimmed."""
    return " ".join(value.split())


# Text that goes into an email header, a chart title or a file name: never a line break in it.
OneLine = Annotated[str, AfterValidator(one_line)]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # safe as a folder name and a database key: never . or ..
NAME_RULE = "must start with a letter or digit, then letters, digits, '.', '_' or '-', at most 64 characters"


def check_name(value: str) -> str:
    """An event (or source) name fit for folder names and keys, or ValueError saying what a name must be."""
    if not NAME.fullmatch(value):
        shown = repr(value[:64]) + ("…" if len(value) > 64 else "")
        raise ValueError(f"{shown} {NAME_RULE}")
    return value


def parse_duration(value: Any) -> timedelta:
    """'30s', '15m', '2h', '1d' (or a number of seconds) → timedelta; ValueError unless finite and above zero."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _positive_duration(value, "seconds", value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 30s, 15m, 2h or 1d")
    amount, unit = match.groups()
    return _positive_duration(int(amount), _DURATION_UNITS[unit], value)


def show_duration(value: timedelta) -> str:
    """A duration as the config spells it: 1d, 2h, 15m, 30s (0.01s below a second)."""
    seconds = value.total_seconds()
    if seconds != int(seconds):
        return f"{seconds:g}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds) // size}{unit}"
    return f"{int(seconds)}s"


def _positive_duration(amount: float, unit: str, given: Any) -> timedelta:
    if not math.isfinite(amount):
        raise ValueError(f"{given!r} is not a finite duration")
    if amount <= 0:
        raise ValueError(f"{given!r} must be longer than zero")
    try:
        return timedelta(**{unit: amount})
    except OverflowError:
        raise ValueError(f"{given!r} is far too long") from None


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SECOND, MINUTE, HOUR, DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
_TEST_WAIT = timedelta(milliseconds=10)  # waits a test server makes short; below a second is never useful in production
MAX_POSTS = 10_000_000  # posts one run may read: far above any platform's free or paid allowance
MAX_WORKERS = 256


def bounded(default: Any, least: Any, most: Any, description: str) -> Any:
    """A setting's Field whose value must lie from `least` to `most`; the description says so (docs/configuration.md shows it)."""
    return Field(
        default, ge=least, le=most, description=f"{description}; from {show_bound(least)} to {show_bound(most)}"
    )


def show_bound(value: Any) -> str:
    """A bound as the config would spell it: 1s, 15m, 1d for durations, 1,000,000 for counts."""
    if isinstance(value, timedelta):
        return show_duration(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# milestones, start and end: from the earliest post an archive may hold, to far from any overflow
EARLIEST_DATE, LATEST_DATE = EARLIEST_POST.date(), date(2100, 1, 1)
_DATE_RANGE = f"{EARLIEST_DATE} to {LATEST_DATE}"


def _milestone_value(value: Any) -> date | datetime:
    moment = _date_or_datetime(value)
    day = moment.date() if isinstance(moment, datetime) else moment
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ValueError(f"{value!r} is outside {_DATE_RANGE}")
    return moment


def _date_or_datetime(value: Any) -> date | datetime:
    if isinstance(value, date | datetime):
        return value
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            return datetime.fromisoformat(text) if ("T" in text or " " in text) else date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date (2012-12-17) or a date-time (2012-12-17T09:00:00-08:00)")


MilestoneValue = Annotated[date | datetime, BeforeValidator(_milestone_value)]


class EventConfig(Section):
    """One policy change to watch."""

    name: str = Field(
        description="Short id used on the command line and in folder names: a letter or digit first, then letters, "
        "digits, '.', '_' or '-', 64 at most"
    )
    platform: OneLine = Field(description="The platform whose policy changed, e.g. Instagram")
    title: OneLine = Field("", description="Human title of the change, shown on charts and in email")
    milestones: dict[str, MilestoneValue] = Field(
        description=f"Named dates or date-times ({_DATE_RANGE}); `announced` is required and the earliest"
    )
    baseline_days: int = bounded(7, 1, 365, "Days before the first milestone used as the baseline")
    follow_days: int = bounded(14, 1, 365, "Days after the last milestone that the analysis and charts cover (unless `end`)")
    query: str = Field("", description="Search query sent to live sources")
    sources: list[str] = Field(default_factory=list, description="Live sources to collect from; [] = imports only")
    aspects: dict[str, list[str]] = Field(
        default_factory=dict, description="Topic → keywords (`*` wildcard) used to tag what a post is about"
    )
    bin: Literal["auto", "hour", "6h", "day"] = Field(
        "auto", description="Time bin of the charts and the analysis; auto: hour up to 5 days of window, 6h up to 30, else day"
    )
    align_on: str = Field(
        "effective", description="Milestone that is day 0 when events are compared (announced if no effective)"
    )
    start: MilestoneValue | None = Field(
        None,
        description=f"Start of the analysed window and of full-archive backfills (default: the baseline's start; {_DATE_RANGE})",
    )
    end: MilestoneValue | None = Field(
        None,
        description=f"End of the analysed window and of full-archive backfills (default: last milestone + follow_days; {_DATE_RANGE})",
    )
    simulated: bool = Field(False, description="The event is fed by the built-in simulation (labelled as such)")
    source_queries: dict[str, str] = Field(
        default_factory=dict,
        description="Query per source where its search syntax differs from `query` (e.g. {mastodon: instagram})",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_alignment(cls, data: Any) -> Any:
        if isinstance(data, dict) and "align_on" not in data and "effective" not in (data.get("milestones") or {}):
            return {**data, "align_on": "announced"}
        return data

    @field_validator("milestones")
    @classmethod
    def _announced_first(cls, value: dict[str, date | datetime]) -> dict[str, date | datetime]:
        if "announced" not in value:
            raise ValueError("needs an `announced` milestone")
        return value

    @model_validator(mode="after")
    def _window_forward(self) -> EventConfig:
        if self.start is not None and self.end is not None and to_aware(self.end, UTC) <= to_aware(self.start, UTC):
            raise ValueError("end must be after start")
        return self

    @field_validator("name")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        return check_name(value)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in KNOWN_SOURCES:
                raise ValueError(f"unknown source {name!r}; known sources: {', '.join(KNOWN_SOURCES)}")
        return value

    def title_or_name(self) -> str:
        return self.title or self.name

    def query_for(self, source: str) -> str:
        """The query a source sends: its own from source_queries, else the event's."""
        return self.source_queries.get(source, self.query)


class RetryingSourceSettings(Section):
    """Settings every live source shares: how long to wait and how often to retry."""

    max_rate_limit_wait: Duration = bounded(
        timedelta(minutes=15), _TEST_WAIT, DAY, "Longest wait for a rate-limit reset before giving up this run"
    )
    retries: int = bounded(5, 0, 20, "Retries of a 5xx or connection error before giving up the run")
    timeout: Duration = bounded(timedelta(seconds=30), SECOND, HOUR, "HTTP (and WebSocket) timeout per request")
    backoff_base: Duration = bounded(
        timedelta(seconds=2),
        _TEST_WAIT,
        HOUR,
        "First wait before retrying a 5xx or connection error; doubles each retry",
    )


class XSourceConfig(RetryingSourceSettings):
    """The X API v2 collector."""

    bearer_token_env: str = Field("X_BEARER_TOKEN", description="Environment variable holding the bearer token")
    endpoint: Literal["recent", "all"] = Field("recent", description="recent (7 days) or all (full archive)")
    api_base: str = Field("https://api.twitter.com", description="Base URL; for gateways, proxies and tests")
    max_posts_per_run: int = bounded(10_000, 1, MAX_POSTS, "Stop a collect run after reading this many posts")
    monthly_post_budget: int = bounded(
        100_000, 0, 1_000_000_000, "Posts the month may read; collect stops at the budget"
    )
    cost_per_post_usd: float = bounded(0.005, 0, 100, "Estimated price of one post read")
    cost_per_counts_request_usd: float = bounded(0.01, 0, 100, "Estimated price of one counts request")
    full_archive_interval: Duration = bounded(
        timedelta(seconds=1), _TEST_WAIT, HOUR, "Least time between two full-archive requests (X allows one per second)"
    )


class BlueskySourceConfig(RetryingSourceSettings):
    """The Bluesky collector (search or Jetstream)."""

    mode: Literal["search", "stream"] = Field("search", description="search (XRPC searchPosts) or stream (Jetstream)")
    handle_env: str = Field("BLUESKY_HANDLE", description="Environment variable holding the account handle")
    app_password_env: str = Field("BLUESKY_APP_PASSWORD", description="Environment variable holding an app password")
    api_base: str = Field("https://bsky.social", description="XRPC base URL")
    stream_url: str = Field("wss://jetstream2.us-east.bsky.network/subscribe", description="Jetstream URL")
    max_posts_per_run: int = bounded(10_000, 1, MAX_POSTS, "Stop a Bluesky search run after reading this many posts")
    stream_max_events: int = bounded(100_000, 1, MAX_POSTS, "Stream mode: Jetstream events read per run at most")
    stream_max_duration: Duration = bounded(
        timedelta(minutes=2), SECOND, DAY, "Stream mode: longest a run reads Jetstream before it returns"
    )
    stream_page_events: int = bounded(
        2_000, 1, 100_000, "Stream mode: events read between two commits of posts and the time_us cursor"
    )


class MastodonSourceConfig(RetryingSourceSettings):
    """The Mastodon collector (hashtag timelines and, with a token, search)."""

    instances: list[str] = Field(default_factory=lambda: ["mastodon.social"], description="Instances to read")
    hashtags: list[str] = Field(default_factory=list, description="Hashtags (without #) to follow")
    access_token_env: str = Field("MASTODON_ACCESS_TOKEN", description="Environment variable with an access token")
    token_instance: str | None = Field(
        None, description="Instance the access token belongs to (search runs there); default the first instance"
    )
    include_bots: bool = Field(False, description="Score posts from accounts flagged as bots")
    search: bool = Field(True, description="Also search the event's query (search_v2) when a token is set")
    scheme: Literal["https", "http"] = Field("https", description="Scheme of the instance URLs (http for tests)")
    max_posts_per_run: int = bounded(5_000, 1, MAX_POSTS, "Stop a Mastodon run after reading this many posts")
    min_remaining_requests: int = bounded(
        5, 0, 300, "Wait for the rate-limit reset when fewer requests than this are left (300 per 5 min)"
    )
    max_rate_limit_wait: Duration = bounded(
        timedelta(minutes=5), _TEST_WAIT, DAY, "Longest wait for a rate-limit reset before giving up this run"
    )

    @field_validator("hashtags")
    @classmethod
    def _bare_hashtags(cls, value: list[str]) -> list[str]:
        return [tag.lstrip("#") for tag in value]


class RedditSourceConfig(RetryingSourceSettings):
    """The Reddit collector (announcement threads, subreddits, site-wide search) through PRAW."""

    user_agent: str = Field(
        "",
        description="Required: the descriptive User-Agent Reddit's rules ask for, e.g. `python:org.example.backlash:1.0 (by /u/you)`",
    )
    client_id_env: str = Field("REDDIT_CLIENT_ID", description="Environment variable with the app's client id")
    client_secret_env: str = Field("REDDIT_CLIENT_SECRET", description="Environment variable with the app's secret")
    username_env: str = Field(
        "REDDIT_USERNAME", description="Environment variable with a script app's user (unset: read-only, app-only)"
    )
    password_env: str = Field("REDDIT_PASSWORD", description="Environment variable with that user's password")
    threads: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Event name → announcement threads (URLs or ids) whose whole comment tree is read each run",
    )
    subreddits: list[str] = Field(
        default_factory=list, description="Subreddits (without r/) whose new submissions and comments are read"
    )
    search: bool = Field(False, description="Also search all of Reddit for the event's query, newest first")
    max_more_requests: int = bounded(
        50, 0, 10_000, "Per thread and run: requests that expand hidden (more) comments, up to 100 comments each"
    )
    max_posts_per_run: int = bounded(10_000, 1, MAX_POSTS, "Stop a Reddit run after reading this many items")
    min_remaining_requests: int = bounded(
        5, 0, 100, "Wait for the rate-limit reset when fewer requests than this are left (about 100 a minute)"
    )
    max_rate_limit_wait: Duration = bounded(
        timedelta(minutes=10), _TEST_WAIT, DAY, "Longest wait for a rate-limit reset before giving up this run"
    )
    oauth_url: str = Field("https://oauth.reddit.com", description="API base URL; for proxies and tests")
    reddit_url: str = Field("https://www.reddit.com", description="Token endpoint base URL; for proxies and tests")

    @field_validator("subreddits")
    @classmethod
    def _bare_subreddits(cls, value: list[str]) -> list[str]:
        return [name.strip().removeprefix("/").removeprefix("r/") for name in value]


class SourcesConfig(Section):
    """Settings per live source; a source an event names but that is not set up here uses its defaults."""

    x: XSourceConfig = Field(default_factory=XSourceConfig)
    bluesky: BlueskySourceConfig = Field(default_factory=BlueskySourceConfig)
    mastodon: MastodonSourceConfig = Field(default_factory=MastodonSourceConfig)
    reddit: RedditSourceConfig = Field(default_factory=RedditSourceConfig)


class ScoringConfig(Section):
    """How text becomes scores."""

    languages: list[str] = Field(default_factory=lambda: ["en"], description="Languages scored; others are counted")
    lexicon: dict[str, Annotated[float, Field(ge=-4, le=4)]] = Field(
        default_factory=dict,
        description="Words (or #hashtags) added to VADER's lexicon, valued from -4 to 4 like VADER's own",
    )
    churn_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CHURN_PATTERNS),
        description="Case-insensitive regular expressions marking intent to leave; {platform} is the event's platform",
    )
    workers: int = bounded(0, 0, MAX_WORKERS, "Worker processes for large batches; 0 = all cores")
    chunk_size: int = bounded(20_000, 100, 1_000_000, "Posts read, scored and written per chunk")

    @field_validator("churn_patterns")
    @classmethod
    def _compilable(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern.replace("{platform}", "x"))
            except re.error as error:
                raise ValueError(f"pattern {index} {pattern!r} is not a regular expression: {error}") from None
        return value


class ChatTarget(Section):
    """One chat room or webhook that receives spike alerts (and, with digest, the digest's headline) through Apprise."""

    url_env: str = Field(
        description="Environment variable holding the Apprise URL (slack://…, msteams://…, discord://…, tgram://…, "
        "mmost://…, json://host/path): it holds tokens, so never the URL itself"
    )
    name: str = Field(
        "",
        max_length=20,
        description="Short name in messages and the sent-alerts record (default: the variable's name, lower-cased)",
    )
    digest: bool = Field(
        False,
        description="Also post each digest's headline here (its subject line and the dashboard link), once per "
        "period like the email, retried by the next run when the post failed",
    )

    def key(self) -> str:
        """The name alerts sent here are recorded under, stable while the setting stays."""
        return self.name or self.url_env.lower()[:20]

    @field_validator("name")
    @classmethod
    def _fit_for_a_key(cls, value: str) -> str:
        return check_name(value) if value else value


class AlertsConfig(Section):
    """When a spike is worth an email (and a chat message)."""

    z_threshold: float = bounded(3.5, 0.5, 100, "Robust z-score (median/MAD) a bin must exceed")
    min_volume: int = bounded(20, 0, 1_000_000, "Bins with fewer posts never count as spikes")
    cooldown: Duration = bounded(timedelta(hours=6), MINUTE, 30 * DAY, "Quiet time between two alerts of one event")
    max_age: Duration = bounded(
        timedelta(hours=24),
        MINUTE,
        30 * DAY,
        "Spikes that ended longer ago are not alerted (the digest still lists them)",
    )
    notify: list[ChatTarget] = Field(
        default_factory=list,
        description="Chat rooms and webhooks that also get spike alerts, each `{url_env: VARIABLE}`; same once-per-spike "
        "and cool-down rules as email, each on its own",
    )

    @model_validator(mode="after")
    def _distinct_chat_names(self) -> AlertsConfig:
        keys = [target.key() for target in self.notify]
        if len(set(keys)) < len(keys):
            raise ValueError(f"notify: two entries are named {max(keys, key=keys.count)!r}; give them distinct names")
        return self


class ScheduleConfig(Section):
    """What the daemon runs when."""

    collect_every: Duration = bounded(
        timedelta(minutes=15), SECOND, DAY, "Collect (then score and check alerts) this often"
    )
    report_cron: str = Field(
        "0 * * * *", description="Crontab expression for `report` (5 fields, or 6 with seconds first)"
    )
    digest_cron: str = Field(
        "0 8 * * *", description="Crontab expression for `digest` (5 fields, or 6 with seconds first)"
    )
    misfire_grace: Duration = bounded(timedelta(minutes=10), SECOND, DAY, "A job late by more than this is skipped")

    @field_validator("report_cron", "digest_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        return check_crontab(value)


# (field, least, most, names) of a crontab line; seconds come first when there are 6 fields
_CRON_FIELDS = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("weekday", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_PART = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?$")


def check_crontab(expression: str) -> str:
    """A crontab line checked at load (5 fields, or 6 with seconds first; numbers, names, ranges, steps, lists)."""
    fields = expression.lower().split()
    if len(fields) not in (5, 6):
        raise ValueError(f"{expression!r} needs 5 fields (minute hour day month weekday) or 6 (seconds first)")
    for text, (name, least, most, names) in zip(fields, _CRON_FIELDS[6 - len(fields) :], strict=True):
        for part in text.split(","):
            _check_cron_part(part, name, least, most, names)
    return " ".join(expression.split())


def _check_cron_part(part: str, name: str, least: int, most: int, names: tuple[str, ...]) -> None:
    match = _CRON_PART.match(part)
    if match is None or match.group(2) == "0":
        raise ValueError(f"{name} {part!r} is not crontab syntax (e.g. 5, 1-5, */15, mon-fri)")
    if match.group(1) == "*":
        return
    for value in match.group(1).split("-"):
        number = names.index(value) + least if value in names else (int(value) if value.isdigit() else -1)
        if not least <= number <= most:
            raise ValueError(f"{name} {value!r} is outside {least}-{most}" + (f" or {names[0]}-{names[-1]}" if names else ""))


class EmailConfig(Section):
    """SMTP delivery of digests and alerts."""

    smtp_host: OneLine = Field("localhost", description="SMTP server")
    smtp_port: int = bounded(587, 1, 65535, "SMTP port")
    security: Literal["starttls", "ssl", "none"] = Field("starttls", description="Transport security")
    username_env: str | None = Field("SMTP_USER", description="Environment variable with the SMTP user")
    password_env: str | None = Field("SMTP_PASSWORD", description="Environment variable with the SMTP password")
    sender: OneLine = Field("monitor@example.org", description="From address")
    recipients: list[OneLine] = Field(default_factory=list, description="To addresses; none = digests switched off")
    timeout: Duration = bounded(timedelta(seconds=30), SECOND, HOUR, "SMTP timeout")
    period: Literal["day", "week"] = Field("day", description="What one digest covers")
    dashboard_url: OneLine | None = Field(None, description="Web address of dashboards/, linked from the email")
    ca_file: Path | None = Field(
        None, description="PEM file of CA certificates trusted for TLS instead of the system's (private or test CA)"
    )


class ReportsConfig(Section):
    """Where reports are written."""

    out_dir: Path = Field(Path("dashboards"), description="Folder that receives one sub-folder per event")


class Config(Section):
    """The whole config file."""

    database: str = Field("sqlite:///data/backlash.db", description="SQLAlchemy URL: sqlite:///file or postgresql://")
    timezone: str = Field("UTC", description="IANA zone for bins, dates without offset and chart axes")
    events: list[EventConfig] = Field(min_length=1, description="The policy changes to watch")
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    base_dir: Path = Field(Path("."), exclude=True, description="Folder of the config file (set on load)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC or Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _events_consistent(self) -> Config:
        names = [event.name for event in self.events]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise ValueError(f"events: duplicate event name {sorted(duplicates)[0]!r}")
        for index, event in enumerate(self.events):
            _check_milestone_order(self, index, event)
        unknown = sorted(set(self.sources.reddit.threads) - set(names))
        if unknown:
            raise ConfigError(f"sources.reddit.threads.{unknown[0]}: no event has this name")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def event(self, name: str | None) -> EventConfig:
        """The named event, or the only one when name is None."""
        if name is None and len(self.events) == 1:
            return self.events[0]
        for event in self.events:
            if event.name == name:
                return event
        known = ", ".join(event.name for event in self.events)
        raise ConfigError(f"--event: no event named {name!r} in the config (events: {known})")

    def selected_events(self, name: str | None) -> list[EventConfig]:
        """Every event, or just the named one."""
        return list(self.events) if name is None else [self.event(name)]

    def milestones_utc(self, event: EventConfig) -> dict[str, datetime]:
        """The event's milestones as aware datetimes, dates read as midnight in the config's zone."""
        return {name: to_aware(value, self.tz) for name, value in event.milestones.items()}

    def window_utc(self, event: EventConfig) -> tuple[datetime, datetime]:
        """The span the event's analysis and charts cover (start inclusive, end exclusive)."""
        return window_of(event, self.tz)

    def resolve_path(self, path: Path) -> Path:
        """A path from the config, relative paths taken from the config file's folder."""
        return path if path.is_absolute() else self.base_dir / path

    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the config file's folder."""
        prefix = "sqlite:///"
        if self.database.startswith(prefix) and not self.database.startswith(prefix + "/"):
            rest = self.database[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(self.resolve_path(Path(rest)).resolve())
        return self.database

    def out_dir(self) -> Path:
        return self.resolve_path(self.reports.out_dir)

    def secret_variables(self) -> list[str]:
        """The environment variables that every `*_env` setting names (tokens, passwords, logins)."""
        return sorted(set(_env_settings(self)))


def _env_settings(section: BaseModel) -> Iterator[str]:
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            yield from _env_settings(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, BaseModel):
                    yield from _env_settings(item)
        elif name.endswith("_env") and isinstance(value, str) and value:
            yield value


def event_window(event: EventConfig, milestones: dict[str, datetime], tz: tzinfo) -> tuple[datetime, datetime]:
    """`start` (default: the baseline's start) up to `end` (default: the last milestone + follow_days).

    A hashtag archive holds years of older uses of the tag; only this window is analysed and charted.
    """
    first, last = min(milestones.values()), max(milestones.values())
    start = to_aware(event.start, tz) if event.start is not None else first - timedelta(days=event.baseline_days)
    end = to_aware(event.end, tz) if event.end is not None else last + timedelta(days=event.follow_days)
    return start, end


def window_of(event: EventConfig, tz: tzinfo) -> tuple[datetime, datetime]:
    """event_window with the event's dates read in tz (as every source and the analysis read them)."""
    return event_window(event, {name: to_aware(value, tz) for name, value in event.milestones.items()}, tz)


def to_aware(value: date | datetime, tz: tzinfo) -> datetime:
    """A date is midnight in tz; a naive date-time is read in tz; an aware one is kept."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0, 0))
    return value if value.tzinfo else value.replace(tzinfo=tz)


def _check_milestone_order(config: Config, index: int, event: EventConfig) -> None:
    moments = config.milestones_utc(event)
    first = min(moments.values())
    if moments["announced"] != first:
        earliest = min(moments, key=lambda name: moments[name])
        raise ConfigError(
            f"events[{index}].milestones.announced: must be the earliest milestone, but {earliest!r} is earlier"
        )
    if event.align_on not in moments:
        raise ConfigError(f"events[{index}].align_on: {event.align_on!r} is not one of the milestones")


def format_location(location: tuple[int | str, ...]) -> str:
    """('events', 0, 'milestones', 'effective') → 'events[0].milestones.effective'."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not (isinstance(part, str) and (part.startswith("function-") or "[" in part)):
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _first_error(error: ValidationError) -> str:
    """The one line to show: an unknown key first, since it usually hides the missing one it misspells."""
    details = error.errors()
    detail = next((d for d in details if d["type"] == "extra_forbidden"), details[0])
    location = format_location(tuple(detail["loc"]))
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        message = "unknown setting" + (_secret_hint(location) or _did_you_mean(location))
    elif location == "events" and detail["type"] == "too_short":
        message = "add at least one event (name, platform and milestones with an `announced` date)"
    elif detail["type"] == "missing":
        message = "is required"
    elif detail["type"] == "finite_number":
        message = f"{detail['input']} is not a finite number"
    elif detail["type"] in _OUT_OF_RANGE:
        limit = next(iter(detail.get("ctx", {}).values()), "?")
        message = f"{_shown_input(detail['input'])} is out of range: {_OUT_OF_RANGE[detail['type']]} {limit}"
    return f"{location}: {message}"


def _shown_input(value: Any) -> str:
    return show_duration(value) if isinstance(value, timedelta) else str(value)[:40]


_OUT_OF_RANGE = {
    "greater_than_equal": "the least allowed is",
    "greater_than": "must be more than",
    "less_than_equal": "the most allowed is",
    "less_than": "must be less than",
}


def _did_you_mean(location: str) -> str:
    """' (did you mean milestones?)' for events[0].milestone, from the settings declared beside it."""
    parent, _, key = re.sub(r"\[\d+\]", "[]", location).rpartition(".")
    prefix = f"{parent}." if parent else ""
    siblings = {path.removeprefix(prefix).split(".")[0] for path, _, _ in settings_reference() if path.startswith(prefix)}
    close = difflib.get_close_matches(key, sorted(siblings), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _secret_hint(location: str) -> str:
    """For a secret written into the file (bearer_token: ...), where it belongs instead."""
    if re.sub(r"\[\d+\]", "[]", f"{location}_env") in {path for path, _, _ in settings_reference()}:
        return (
            "; secrets stay out of the file: put it in an environment variable and name that variable in "
            f"{location}_env"
        )
    return ""


def parse_config(data: Any, base_dir: Path = Path(".")) -> Config:
    """Validate an already-parsed YAML document."""
    if not isinstance(data, dict):
        raise ConfigError("config: the file must be a mapping of settings (database, events, ...)")
    try:
        return Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(_first_error(error)) from None
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from None


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as text, so a bad date is reported with its field path."""

    yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def config_path(path: str | Path | None) -> Path:
    """The config file to use: the given path, $BACKLASH_CONFIG, or ./config.yaml."""
    return Path(path or os.environ.get("BACKLASH_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file; any problem is a ConfigError naming the file or field."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{file}: cannot read the config file ({error.strerror or error})") from None
    try:
        data = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"{file}{where}: {problem}") from None
    try:
        return parse_config(data, file.resolve().parent)
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from None


def settings_reference() -> list[tuple[str, str, str]]:
    """(dotted path, default, description) for every setting: the table in docs/configuration.md."""
    return list(_walk_settings(Config, ""))


def _walk_settings(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
    for name, info in model.model_fields.items():
        if name == "base_dir":
            continue
        path = prefix + name
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk_settings(annotation, path + ".")
            continue
        default = "required" if info.is_required() else _show_default(info.get_default(call_default_factory=True))
        yield path, default, info.description or ""
        item = next(iter(get_args(annotation)), None)
        if isinstance(item, type) and issubclass(item, BaseModel):  # a list of sections: events, alerts.notify
            yield from _walk_settings(item, path + "[].")


def _show_default(value: Any) -> str:
    if isinstance(value, timedelta):
        return show_duration(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list) and len(str(value)) > 60:
        return f"{len(value)} built-in entries"
    return "" if value is None else str(value)
