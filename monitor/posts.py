"""Post: the one record every source yields and the store keeps, and the limits every post is held to.

A Post cleans and checks itself when it is made, so every source — live, archive, simulated — gets the
same rules: no control characters, no lone surrogates, times and counts and lengths the store can hold.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

EARLIEST_POST = datetime(1990, 1, 1, tzinfo=UTC)  # older archives are not social media; earlier is a broken date
FUTURE_SLACK = timedelta(days=2)  # clocks and time zones; a post further in the future than this cannot exist
MAX_COUNT = 2**31 - 1  # likes, reposts, replies, followers: the store's INTEGER column (PostgreSQL's is 32-bit)
MAX_TEXT_CHARS = 131_072  # a post's text: Python's csv field limit, made the one limit of every source and format
MAX_FIELD_CHARS = {"source": 128, "id": 256, "author": 256, "lang": 16, "repost_of": 256, "text": MAX_TEXT_CHARS}
_COUNT_FIELDS = ("likes", "reposts", "replies", "followers")
_TEXT_FIELDS = ("source", "id", "text", "author", "lang", "url", "repost_of", "raw")
# C0 control characters but tab, newline and carriage return (PostgreSQL refuses NUL), and lone surrogates (not UTF-8)
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


class InvalidPostError(ValueError):
    """A post's time, count or length is outside what the store accepts; the message names the field."""

# What a platform shows in place of a deleted or removed text (Reddit's bodies): not the author's words, so
# such posts are counted in coverage but never scored (status "skipped:deleted").
PLACEHOLDER_TEXTS = frozenset({"[deleted]", "[removed]"})


@dataclass(frozen=True, slots=True)
class Post:
    """A public post about a policy change, normalised across platforms."""

    source: str  # name of the source that yielded it: "x", "archive", "simulated", "mastodon@mastodon.social"
    id: str  # the platform's id, or stable_post_id() for archives without ids
    created_at: datetime  # when it was posted, timezone-aware UTC
    text: str  # the post's plain text as the author wrote it
    author: str | None = None  # handle without "@", when known
    lang: str | None = None  # language tag given by the platform or archive (BCP 47), None when absent
    likes: int | None = None  # engagement counts at collection time, None when unknown
    reposts: int | None = None
    replies: int | None = None
    followers: int | None = None  # the author's followers at collection time
    url: str | None = None  # a web link to the post
    is_repost: bool = False  # a retweet/boost: the text is the original's
    repost_of: str | None = None  # id of the original when is_repost
    is_bot: bool = False  # the platform flags the account as automated
    is_quote: bool = False  # it quotes (embeds) another post; unlike a repost, the text is its own
    raw: str | None = None  # the payload it was normalised from (JSON text), for provenance
    collected_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # when we read it

    def __post_init__(self) -> None:
        """Clean every text field, then refuse what the store could not hold (InvalidPostError)."""
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str) and _UNWANTED.search(value):
                object.__setattr__(self, name, clean_text(value))
        problem = _post_problem(self)
        if problem:
            raise InvalidPostError(problem)


@dataclass(frozen=True, slots=True)
class PostRows:
    """Posts already held to Post's rules, as the store's rows: each a Post's fields in their order,
    times as naive-UTC text (`utc_text`).

    Building a Post runs every check again in Python (about 10 µs a post); the archive reader checks a
    chunk of CSV rows column by column and hands the store this instead. A Post becomes a row by `post_row`.
    """

    rows: list[tuple[Any, ...]]


# A post as Store.iter_unscored reads it for scoring: the driver's own tuple of these fields (is_bot may be 0/1)
UNSCORED_POST_FIELDS = ("source", "post_id", "text", "lang", "is_bot")
UnscoredPost = tuple[Any, ...]

# A score row as BatchScorer makes it and Store.add_scores writes it: a plain tuple of these fields, in this
# order (a dict per post cost about a microsecond to build and another to read back)
SCORE_ROW_FIELDS = ("source", "post_id", "scorer", "status", "lang", "neg", "neu", "pos", "compound", "churn", "aspects")
ScoreRow = tuple[Any, ...]


def utc_naive(moment: datetime) -> datetime:
    """Aware → naive UTC, the form every time is stored in."""
    if moment.tzinfo is None:
        return moment
    if moment.tzinfo is not UTC:  # the archive reader's and most sources' times are UTC already
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def utc_text(moment: datetime) -> str:
    """A time as naive-UTC text with microseconds, '2012-12-18 10:00:00.000000' (SQLite's DateTime text too)."""
    return utc_naive(moment).isoformat(" ", "microseconds")


def post_row(post: Post) -> tuple[Any, ...]:
    """A Post as a PostRows row."""
    return (
        post.source, post.id, utc_text(post.created_at), post.text, post.author, post.lang, post.likes, post.reposts,
        post.replies, post.followers, post.url, post.is_repost, post.repost_of, post.is_bot, post.is_quote, post.raw,
        utc_text(post.collected_at),
    )  # fmt: skip


def clean_text(text: str) -> str:
    """Control characters (but tab, newline, carriage return) removed; a lone surrogate becomes U+FFFD."""
    return _CONTROL.sub("", _SURROGATE.sub("\ufffd", text))


def _post_problem(post: Post) -> str | None:
    """Why the store cannot take this post, or None."""
    return time_problem(post.created_at) or _length_problem(post) or _count_problem(post)


def time_problem(created_at: datetime) -> str | None:
    """Why no post can have been made at this time (before 1990, or in the future), or None."""
    moment = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    if moment < EARLIEST_POST:
        return f"created_at: {moment.isoformat()} is before {EARLIEST_POST.date()}, the earliest accepted"
    if moment > datetime.now(UTC) + FUTURE_SLACK:
        return f"created_at: {moment.isoformat()} is in the future (more than {FUTURE_SLACK.days} days from now)"
    return None


def _length_problem(post: Post) -> str | None:
    for name, limit in MAX_FIELD_CHARS.items():
        value = getattr(post, name)
        if value is not None and len(value) > limit:
            return f"{name}: {len(value)} characters, more than the limit of {limit}"
    return None


def _count_problem(post: Post) -> str | None:
    for name in _COUNT_FIELDS:
        value = getattr(post, name)
        if value is not None and not valid_count(value):
            shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:20]}… ({len(str(value))} digits)"
            return f"{name}: {shown} is negative" if value < 0 else f"{name}: {shown} is more than {MAX_COUNT}"
    return None


def valid_count(value: int) -> bool:
    """Whether a count (likes, followers…) fits the store: 0 to MAX_COUNT."""
    return 0 <= value <= MAX_COUNT


def stable_post_id(author: str | None, created_at: datetime, text: str) -> str:
    """An id for a post that came without one: same author, time and text give the same id.

    Two different posts with the same text (different author or time) get different ids,
    so re-importing a scraped archive stays idempotent without merging distinct posts.
    """
    return hashed_ids([author or ""], [created_at.astimezone(UTC).replace(tzinfo=None).isoformat()], [text])[0]


def hashed_ids(authors: Iterable[str], times: Iterable[str], texts: Iterable[str]) -> list[str]:
    """stable_post_id of many posts from their parts as text: the author ('' if none) and the time in UTC in
    naive ISO form ('2012-12-18T10:00:00'); one loop in C but for the hash."""
    sha256 = hashlib.sha256
    return [
        "h:" + sha256(f"{author}\x1f{moment}+00:00\x1f{text}".encode()).digest()[:16].hex()
        for author, moment, text in zip(authors, times, texts, strict=False)
    ]


_TWITTER_LEGACY_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


def parse_timestamp(value: str, default_tz: tzinfo = UTC) -> datetime:
    """ISO 8601 (with T or a space), RFC 2822, Twitter's legacy format or epoch seconds → aware UTC.

    A time without an offset is read in default_tz (the config's zone). Raises ValueError.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    return as_utc(_parse_any(text), default_tz, text)


def as_utc(moment: datetime, default_tz: tzinfo, text: str) -> datetime:
    """A parsed time in UTC, read in default_tz when it has no offset; ValueError when out of range."""
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=default_tz)).astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved by an offset
        raise ValueError(f"{text[:40]!r} is out of the range of dates") from None


def _parse_any(text: str) -> datetime:
    if _looks_numeric(text):
        return _from_epoch(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    try:
        return datetime.strptime(text, _TWITTER_LEGACY_FORMAT)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"{text[:40]!r} is not a timestamp (ISO 8601, RFC 2822 or epoch seconds)") from None


def _from_epoch(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (OverflowError, OSError, ValueError):  # 1e30, inf, nan: no moment in time
        raise ValueError(f"{text[:40]!r} is out of the range of dates") from None


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
