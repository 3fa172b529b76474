"""The Mastodon collector: hashtag timelines on each configured instance, and search_v2 where a token is set.

A feed is one instance and one hashtag (or the search). Cursor kinds per event and feed, like X's:
`<feed> since_id` (newest status of the last finished run), and while a run of pages is in progress
`<feed> max_id` and `<feed> pending`, so a killed run resumes with the same since_id, and only a
finished run moves since_id forward. Posts are stored under "mastodon@<instance>" so ids never collide.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mastodon import Mastodon
from mastodon import errors as mastodon_errors

from monitor.config import Config, EventConfig, MastodonSourceConfig, to_aware, window_of
from monitor.errors import NotConfiguredError, SourceError
from monitor.posts import Post
from monitor.sources.answer_limit import limited_session
from monitor.sources.base import Page, Source
from monitor.sources.mastodon_payloads import normalize_statuses, status_id_number
from monitor.sources.redaction import redact_in_logs
from monitor.sources.retry import (
    RateLimited,
    RetryPolicy,
    Transient,
    Verdict,
    call_with_retries,
    cannot_connect,
    rate_limit_delay,
    wait,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 40  # the most a timeline or search page holds
MAX_KIND = 64  # the cursors table's kind column
UTC_ZONE = ZoneInfo("UTC")
# Before a search with min_id/max_id Mastodon.py asks /api/v1/instance for the server's version, and it
# recurses without end when that request fails. Everything we call exists since Mastodon 3.0 (search
# paging since 2.8), so we declare that version instead of asking.
ASSUMED_VERSION = "3.0.0"


@dataclass(frozen=True)
class Feed:
    """One stream of statuses: a hashtag timeline or the search, on one instance."""

    instance: str
    hashtag: str | None  # None: search_v2 with the event's query

    @property
    def label(self) -> str:
        return f"{self.instance} #{self.hashtag}" if self.hashtag else f"{self.instance} search"

    def kind(self, name: str) -> str:
        """The cursor kind of this feed's `name` value; long instance names are shortened by a hash."""
        key = f"{self.instance}#{self.hashtag}" if self.hashtag else f"{self.instance}?search"
        if len(key) + len(name) + 1 > MAX_KIND:
            key = key[:30] + "~" + hashlib.sha256(key.encode()).hexdigest()[:12]
        return f"{key} {name}"


class MastodonSource(Source):
    """Statuses from hashtag timelines (public) and search (with a token), newest first, 40 a page."""

    name = "mastodon"

    def __init__(self, settings: MastodonSourceConfig, token: str | None, tz: ZoneInfo = UTC_ZONE) -> None:
        if token:
            redact_in_logs(token)
        self.settings = settings
        self.token = token
        self.tz = tz
        self.read_limit = settings.max_posts_per_run
        self.policy = RetryPolicy.from_settings(settings)
        self._clients: dict[str, Mastodon] = {}

    @classmethod
    def from_config(cls, config: Config) -> MastodonSource:
        settings = config.sources.mastodon
        token = os.environ.get(settings.access_token_env) or None
        if not settings.instances:
            raise NotConfiguredError("Mastodon source skipped: sources.mastodon.instances is empty")
        if not settings.hashtags and not (token and settings.search):
            raise NotConfiguredError(
                f"Mastodon source skipped: no sources.mastodon.hashtags, and ${settings.access_token_env} "
                "is not set for search"
            )
        if not token and settings.search:
            log.info(
                "mastodon: search skipped ($%s is not set); reading hashtag timelines only", settings.access_token_env
            )
        return cls(settings, token, config.tz)

    def close(self) -> None:
        for client in self._clients.values():
            client.session.close()

    @property
    def token_instance(self) -> str:
        return self.settings.token_instance or self.settings.instances[0]

    def feeds(self) -> list[Feed]:
        feeds = [Feed(instance, tag) for instance in self.settings.instances for tag in self.settings.hashtags]
        if self.token and self.settings.search:
            feeds.append(Feed(self.token_instance, None))
        return feeds

    # ---- search ------------------------------------------------------------------------------

    def search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Each feed in turn, newest first down to the stored since_id (or the event's window start)."""
        read = 0
        for feed in self.feeds():
            for page in self._feed(event, feed, cursor):
                read += page.read
                yield page
                if self.stopping() or (self.read_limit is not None and read >= self.read_limit):
                    return

    def _feed(self, event: EventConfig, feed: Feed, cursor: Mapping[str, str]) -> Iterator[Page]:
        since = cursor.get(feed.kind("since_id"))
        max_id = cursor.get(feed.kind("max_id"))
        pending = cursor.get(feed.kind("pending")) if max_id else None
        window_start, window_end = self._window_start(event), self._window_end(event)
        fed = 0
        while not self.stopping():
            statuses, next_max = self._fetch(feed, event.query_for(self.name), since, max_id or window_end)
            numbers = [n for n in map(status_id_number, statuses) if n is not None]
            if numbers and (pending is None or max(numbers) > int(pending)):
                pending = str(max(numbers))
            posts, skipped, older = self._posts(statuses, feed, window_start)
            fed += len(statuses)
            finished = not statuses or next_max is None or older
            max_id = None if finished else next_max
            cursor_update = _cursor(feed, since, max_id, pending)
            yield Page(posts, cursor_update, read=len(statuses), skipped=skipped, feed=f"{self.name}@{feed.label}")
            if finished:
                log.info("mastodon %s: %s read, %d statuses", event.name, feed.label, fed)
                return

    def _posts(self, statuses: list[Any], feed: Feed, window_start: datetime) -> tuple[list[Post], int, bool]:
        """(posts inside the window, malformed statuses skipped, whether the window's start was passed)."""
        posts, skipped, older = [], 0, False
        for item in normalize_statuses(statuses, feed.instance, datetime.now(UTC)):
            if isinstance(item, str):
                skipped += 1
                log.warning("skipped a malformed status from %s: %s", feed.instance, item)
            elif item.created_at < window_start:
                older = True
            else:
                posts.append(item)
        return posts, skipped, older

    def _window_end(self, event: EventConfig) -> str | None:
        """The id just above the event's end, when it has one (Mastodon ids start with their time in ms)."""
        if event.end is None:
            return None
        return str(int(to_aware(event.end, self.tz).timestamp() * 1000) << 16)

    def _window_start(self, event: EventConfig) -> datetime:
        return window_of(event, self.tz)[0]

    # ---- requests ----------------------------------------------------------------------------

    def _client(self, instance: str) -> Mastodon:
        if instance not in self._clients:
            self._clients[instance] = Mastodon(
                api_base_url=f"{self.settings.scheme}://{instance}",
                access_token=self.token if instance == self.token_instance else None,
                ratelimit_method="throw",  # we wait ourselves, interruptibly and within max_rate_limit_wait
                request_timeout=self.settings.timeout.total_seconds(),
                user_agent="backlash-monitor",
                mastodon_version=ASSUMED_VERSION,
                version_check_mode="created",
                session=limited_session(),
            )
        return self._clients[instance]

    def _fetch(self, feed: Feed, query: str, since: str | None, max_id: str | None) -> tuple[list[Any], str | None]:
        """One page of a feed and the max_id of the next (from the Link header, or the page's lowest id)."""
        client = self._client(feed.instance)
        self._respect_rate_limit(client, feed.instance)
        call = self._call(client, feed, query, since, max_id)
        try:
            statuses, next_max = call_with_retries(call, _classifier(client), self.policy, self.stop)
        except mastodon_errors.MastodonError as error:
            raise _clear_error(error, feed, self.settings.access_token_env) from None
        return statuses, next_max

    def _call(
        self, client: Mastodon, feed: Feed, query: str, since: str | None, max_id: str | None
    ) -> Callable[[], tuple[list[Any], str | None]]:
        if feed.hashtag is not None:
            tag = feed.hashtag

            def timeline() -> tuple[list[Any], str | None]:
                page = client.timeline_hashtag(tag, since_id=since, max_id=max_id, limit=PAGE_SIZE)
                following = getattr(page, "_pagination_next", None)
                next_max = following.get("max_id") if isinstance(following, Mapping) else None
                return list(page), str(next_max) if next_max is not None else None

            return timeline

        def search() -> tuple[list[Any], str | None]:
            found = client.search_v2(
                query, resolve=False, result_type="statuses", min_id=since, max_id=max_id, limit=PAGE_SIZE
            )
            statuses = list(found.get("statuses") or []) if isinstance(found, Mapping) else []
            numbers = [n for n in map(status_id_number, statuses) if n is not None]
            return statuses, str(min(numbers)) if len(statuses) >= PAGE_SIZE and numbers else None

        return search

    def _respect_rate_limit(self, client: Mastodon, instance: str) -> None:
        """Wait for the reset when the X-RateLimit-Remaining of the last answer is nearly used up."""
        remaining, reset = client.ratelimit_remaining, client.ratelimit_reset
        if reset is None or remaining is None or remaining >= self.settings.min_remaining_requests:
            return
        delay = rate_limit_delay(float(reset), time.time(), 0, self.policy)
        log.warning("mastodon %s: %s requests left; waiting %.0fs for the reset", instance, remaining, delay)
        wait(delay, self.stop, f"waiting for the rate limit of {instance}")


def _cursor(feed: Feed, since: str | None, max_id: str | None, pending: str | None) -> dict[str, str | None]:
    """In progress: max_id and the pending since_id; finished: since_id moves to the newest status read."""
    if max_id is not None:
        return {feed.kind("max_id"): max_id, feed.kind("pending"): pending}
    finished: dict[str, str | None] = {feed.kind("max_id"): None, feed.kind("pending"): None}
    if pending is not None and (since is None or int(pending) > int(since)):
        finished[feed.kind("since_id")] = pending
    return finished


def _classifier(client: Mastodon) -> Callable[[Exception], Verdict]:
    def classify(error: Exception) -> Verdict:
        """429 (until X-RateLimit-Reset), 5xx, dropped connections and garbage bodies pass if we wait."""
        if isinstance(error, mastodon_errors.MastodonRatelimitError):
            return RateLimited(float(client.ratelimit_reset) if client.ratelimit_reset else None)
        if isinstance(error, mastodon_errors.MastodonServerError):
            return Transient(f"Mastodon answered HTTP {_status(error)}")
        if isinstance(error, mastodon_errors.MastodonNetworkError):
            return cannot_connect(error, client.api_base_url or "the instance")
        if isinstance(error, mastodon_errors.MastodonAPIError) and "Could not parse response" in str(error):
            return Transient("Mastodon answered with a body that is not JSON")
        return None

    return classify


def _status(error: Exception) -> Any:
    return error.args[1] if len(error.args) > 1 else "?"


def _clear_error(error: Exception, feed: Feed, token_env: str) -> SourceError:
    """Mastodon.py's errors → one line naming the feed (and the variable), never the token."""
    if isinstance(error, mastodon_errors.MastodonUnauthorizedError):
        return SourceError(f"{feed.label}: the instance refused the access token in ${token_env} (HTTP 401)")
    detail = error.args[3] if len(error.args) > 3 and error.args[3] else str(error.args[0] if error.args else error)
    return SourceError(f"{feed.label}: Mastodon refused the request (HTTP {_status(error)}): {str(detail)[:300]}")
