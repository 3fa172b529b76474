"""X API v2 payloads (live pages and twarc2 archive lines) → Post records; pure functions, no network, no tweepy.

Kept apart from sources/x.py so the archive importer can read twarc2 output without loading tweepy.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from monitor.errors import MalformedError
from monitor.posts import InvalidPostError, Post, parse_timestamp, time_problem, valid_count
from monitor.sources.payload_fields import count as _count
from monitor.sources.payload_fields import mapping as _mapping
from monitor.sources.payload_fields import optional_text as _optional_text
from monitor.sources.payload_fields import required_text

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
UNDETERMINED_LANGS = {"und", "zxx", "qme", "qht", "qam", "qct", "qst"}  # X's tags for "no language"


class MalformedTweetError(MalformedError):
    """A tweet object lacks what a Post needs (id, text, created_at) or has the wrong types."""


_required_text = partial(required_text, error=MalformedTweetError)


def normalize_tweet(
    tweet: Mapping[str, Any],
    users_by_id: Mapping[str, Mapping[str, Any]],
    collected_at: datetime,
    tweets_by_id: Mapping[str, Mapping[str, Any]] | None = None,
    source: str = "x",
) -> Post:
    """One v2 tweet object (with the page's included users and tweets) → Post; MalformedTweetError if unusable."""
    if not isinstance(tweet, Mapping):
        raise MalformedTweetError(f"tweet is a {type(tweet).__name__}, not an object")
    tweet_id = _required_text(tweet, "id")
    user = _user(users_by_id, tweet.get("author_id"))
    username = _optional_text(user, "username")
    repost_of = _referenced_id(tweet, "retweeted")
    metrics = _mapping(tweet, "public_metrics")
    return Post(
        source=source,
        id=tweet_id,
        created_at=_created_at(tweet),
        text=_text(tweet, repost_of, tweets_by_id or {}),
        author=username,
        lang=_lang(tweet),
        likes=_count(metrics, "like_count"),
        reposts=_count(metrics, "retweet_count"),
        replies=_count(metrics, "reply_count"),
        followers=_count(_mapping(user, "public_metrics"), "followers_count"),
        url=f"https://x.com/{username or 'i/web'}/status/{tweet_id}",
        is_repost=repost_of is not None,
        repost_of=repost_of,
        is_quote=_referenced_id(tweet, "quoted") is not None,
        raw=json.dumps(tweet, ensure_ascii=False, separators=(",", ":")),
        collected_at=collected_at,
    )


def normalize_page(payload: Mapping[str, Any], collected_at: datetime, source: str = "x") -> tuple[list[Post], int]:
    """A search response body → (posts, number of malformed tweets logged and skipped)."""
    posts: list[Post] = []
    skipped = 0
    for result in normalize_page_items(payload, collected_at, source):
        if isinstance(result, Post):
            posts.append(result)
        else:
            skipped += 1
            log.warning("skipped a malformed tweet: %s", result)
    return posts, skipped


def normalize_page_items(item: Mapping[str, Any], collected_at: datetime, source: str = "x") -> Iterator[Post | str]:
    """A v2 response page, or one twarc2-flattened tweet, → a Post or a reason string per tweet."""
    if "data" in item or "meta" in item:  # a page with no results has meta but no data
        data = item.get("data") or []
        if not isinstance(data, list):
            yield "the page's `data` is not a list"
            return
        users, tweets = _includes(item.get("includes"))
        for tweet in data:
            yield _post_or_reason(tweet, users, tweets, collected_at, source)
    elif "id" in item:
        users, tweets = _flattened_includes(item)
        yield _post_or_reason(item, users, tweets, collected_at, source)
    else:
        yield "neither a v2 response page (data) nor a tweet (id)"


def _post_or_reason(
    tweet: Any,
    users: Mapping[str, Mapping[str, Any]],
    tweets: Mapping[str, Mapping[str, Any]],
    collected_at: datetime,
    source: str,
) -> Post | str:
    try:
        return normalize_tweet(tweet, users, collected_at, tweets, source)
    except (MalformedTweetError, InvalidPostError) as error:
        tweet_id = tweet.get("id") if isinstance(tweet, Mapping) else None
        return f"tweet {tweet_id!r}: {error}" if tweet_id is not None else str(error)


def _includes(includes: Any) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """includes.users and includes.tweets by id; anything malformed in them is ignored."""
    if not isinstance(includes, Mapping):
        return {}, {}
    return _by_id(includes.get("users")), _by_id(includes.get("tweets"))


def _by_id(objects: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(objects, list):
        return {}
    return {str(obj["id"]): obj for obj in objects if isinstance(obj, Mapping) and "id" in obj}


def _flattened_includes(tweet: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """twarc2's flattened tweets embed the author and the referenced tweets instead of listing them in includes."""
    users = _by_id([tweet.get("author")])
    references = tweet.get("referenced_tweets")
    embedded = (
        [ref.get("tweet") for ref in references if isinstance(ref, Mapping)] if isinstance(references, list) else []
    )
    return users, _by_id(embedded)


def _user(users_by_id: Mapping[str, Mapping[str, Any]], author_id: Any) -> Mapping[str, Any]:
    user = users_by_id.get(str(author_id)) if author_id is not None else None
    return user if isinstance(user, Mapping) else {}


def _created_at(tweet: Mapping[str, Any]) -> datetime:
    stamp = _required_text(tweet, "created_at")
    try:
        return parse_timestamp(stamp)
    except ValueError as error:
        raise MalformedTweetError(f"`created_at`: {error}") from None


def _referenced_id(tweet: Mapping[str, Any], kind: str) -> str | None:
    """The id of the tweet this one references as `kind` ("retweeted", "quoted", "replied_to"), or None."""
    references = tweet.get("referenced_tweets")
    if not isinstance(references, list):
        return None
    for reference in references:
        if isinstance(reference, Mapping) and reference.get("type") == kind and reference.get("id"):
            return str(reference["id"])
    return None


def _text(tweet: Mapping[str, Any], repost_of: str | None, tweets_by_id: Mapping[str, Mapping[str, Any]]) -> str:
    """The tweet's text as people read it: X sends `&`, `<` and `>` as HTML entities; for a retweet, the
    original's full text when included (a retweet's own is cut at 140)."""
    text = _required_text(tweet, "text")
    original = tweets_by_id.get(repost_of) if repost_of else None
    if isinstance(original, Mapping) and isinstance(original.get("text"), str) and original["text"]:
        text = str(original["text"])
    return html.unescape(text)


def _lang(tweet: Mapping[str, Any]) -> str | None:
    lang = _optional_text(tweet, "lang")
    return None if lang is None or lang in UNDETERMINED_LANGS else lang


def normalize_counts(
    payload: Mapping[str, Any], start: datetime | None = None, end: datetime | None = None
) -> list[tuple[datetime, int]]:
    """A counts response → (hour start, posts) for every hour from `start` to `end`, zeros included.

    X lists only the hours that have posts, so a missing hour means zero. Without `start`/`end` the
    hours run from the first to the last listed one; a listed hour outside them is kept as well.
    """
    found = listed_hours(payload)
    first = min([*found, *([hour_start(start)] if start else [])], default=None)
    last = max([*found, *([hour_ceiling(end) - HOUR] if end else [])], default=None)
    if first is None or last is None:
        return []
    return [(moment, found.get(moment, 0)) for moment in _hours(first, last + HOUR)]


def listed_hours(payload: Mapping[str, Any]) -> dict[datetime, int]:
    """The hours a counts response lists, by their start (on the clock hour), and their posts."""
    found: dict[datetime, int] = {}
    data = payload.get("data")
    for bucket in data if isinstance(data, list) else []:
        try:
            start, count = parse_timestamp(str(bucket["start"])), int(bucket["tweet_count"])
        except (KeyError, TypeError, ValueError, OverflowError):
            start, count = None, -1
        if start is None or time_problem(start) or not valid_count(count):  # an hour in year 1 would fill 17M hours
            log.warning("skipped a malformed count bucket: %.200r", bucket)
            continue
        found[hour_start(start)] = count
    return found


def hour_start(moment: datetime) -> datetime:
    """The start of the clock hour `moment` falls in."""
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_ceiling(moment: datetime) -> datetime:
    """`moment` if it is on the hour, else the start of the next hour."""
    start = hour_start(moment)
    return start if start == moment else start + HOUR


def _hours(first: datetime, end: datetime) -> Iterator[datetime]:
    moment = first
    while moment < end:
        yield moment
        moment += HOUR
