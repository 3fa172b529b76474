"""Post: the one record every source yields and the store keeps."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime

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


def stable_post_id(author: str | None, created_at: datetime, text: str) -> str:
    """An id for a post that came without one: same author, time and text give the same id.

    Two different posts with the same text (different author or time) get different ids,
    so re-importing a scraped archive stays idempotent without merging distinct posts.
    """
    key = "\x1f".join([author or "", created_at.astimezone(UTC).isoformat(), text])
    return "h:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


_TWITTER_LEGACY_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Wed Oct 10 20:19:24 +0000 2018"


def parse_timestamp(value: str, default_tz: tzinfo = UTC) -> datetime:
    """ISO 8601 (with T or a space), RFC 2822, Twitter's legacy format or epoch seconds → aware UTC.

    A time without an offset is read in default_tz (the config's zone). Raises ValueError.
    """
    text = value.strip()
    if not text:
        raise ValueError("empty timestamp")
    moment = _parse_any(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_tz)
    return moment.astimezone(UTC)


def _parse_any(text: str) -> datetime:
    if _looks_numeric(text):
        return datetime.fromtimestamp(float(text), UTC)
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


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
