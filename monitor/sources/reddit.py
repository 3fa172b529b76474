"""The Reddit collector through PRAW: announcement threads, subreddits' new posts and comments, site-wide search.

Three kinds of feed, each optional, with cursor kinds per event like Mastodon's:
- a thread (`thread <id> seen_to`): the whole comment tree is read again each run (new comments, fresh
  scores), and the comments hidden behind "more" stubs are fetched oldest id first within
  `max_more_requests`; `seen_to` is the highest comment id below which every hidden comment was read
  (Reddit ids are sequential base36), so the next run skips those and continues with the rest;
- a listing (`r/<name> new`, `r/<name> comments`, `search`), newest first with `after`: `since` is the
  newest item of the last finished run, and while a run pages, `after` and `pending` (its newest item),
  so a killed run resumes below the last stored page and only a finished run moves `since` forward.
Reddit's listings end after about 1,000 items: what lies below cannot be read, and the run says so.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import praw
import prawcore
from prawcore.rate_limit import RateLimiter
from prawcore.sessions import FiniteRetryStrategy

from monitor.config import Config, EventConfig, RedditSourceConfig, window_of
from monitor.errors import ConfigError, NotConfiguredError, SourceError
from monitor.posts import Post
from monitor.sources.answer_limit import limited_session
from monitor.sources.base import Page, Source
from monitor.sources.query import Matcher, compile_query
from monitor.sources.redaction import redact_in_logs
from monitor.sources.reddit_payloads import (
    MoreStub,
    flatten_tree,
    id_number,
    listing_page,
    morechildren_things,
    normalize_things,
    thread_id,
)
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

PAGE_SIZE = 100  # the most a listing page holds
THREAD_LIMIT = 500  # comments the first read of a thread asks for (Reddit's most)
MORE_BATCH = 100  # hidden comment ids one /api/morechildren request may ask for
LISTING_LIMIT = 1000  # Reddit's listings end after about this many items
LISTING_NEAR_LIMIT = 900  # a listing that ends after this many items ended at the limit, not at its start
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Credentials:
    """The app's id and secret, and a script app's user; never printed or stored."""

    client_id: str
    client_secret: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Listing:
    """A newest-first listing: a subreddit's new submissions or comments, or the site-wide search."""

    path: str  # API path, e.g. "/r/instagram/new"
    label: str  # feed name in cursors and coverage, e.g. "r/instagram new"
    filtered: bool  # match the event's query here (the search already matched it on Reddit)

    def kind(self, name: str) -> str:
        return f"{self.label} {name}"


class RedditSource(Source):
    """Comments and submissions from threads, subreddits and search; PRAW handles OAuth, we pace and retry."""

    name = "reddit"

    def __init__(self, settings: RedditSourceConfig, credentials: Credentials, tz: ZoneInfo = UTC_ZONE) -> None:
        for secret in (credentials.client_secret, credentials.password):
            if secret:
                redact_in_logs(secret)
        self.settings = settings
        self.tz = tz
        self.read_limit = settings.max_posts_per_run
        self.policy = RetryPolicy.from_settings(settings)
        self.limiter = _PacedRateLimiter(self)
        self.reddit = _client(settings, credentials, self.limiter)

    @classmethod
    def from_config(cls, config: Config) -> RedditSource:
        settings = config.sources.reddit
        if not settings.user_agent.strip():
            raise NotConfiguredError(
                "Reddit source skipped: sources.reddit.user_agent is empty (Reddit's rules require a descriptive "
                "one, e.g. 'python:org.example.backlash:1.0 (by /u/you)')"
            )
        _check_threads(settings)
        credentials = _credentials(settings)
        if not (settings.threads or settings.subreddits or settings.search):
            raise NotConfiguredError(
                "Reddit source skipped: no sources.reddit.threads or subreddits, and search is off"
            )
        return cls(settings, credentials, config.tz)

    def close(self) -> None:
        for core in {id(c): c for c in _sessions(self.reddit)}.values():
            core.close()  # the requests session behind PRAW

    def listings(self) -> list[Listing]:
        found = []
        for name in self.settings.subreddits:
            found.append(Listing(f"/r/{name}/new", f"r/{name} new", True))
            found.append(Listing(f"/r/{name}/comments", f"r/{name} comments", True))
        if self.settings.search:
            found.append(Listing("/search", "search", False))
        return found

    # ---- search ------------------------------------------------------------------------------

    def search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Each thread of the event, then each listing, until the read limit or a stop."""
        read = 0
        feeds: list[Iterator[Page]] = [
            self._thread(event, thread_id(ref), cursor) for ref in self.settings.threads.get(event.name, [])
        ]
        feeds += [self._listing(event, listing, cursor) for listing in self.listings()]
        for feed in feeds:
            for page in feed:
                read += page.read
                yield page
                if self.stopping() or (self.read_limit is not None and read >= self.read_limit):
                    return

    # ---- threads -----------------------------------------------------------------------------

    def _thread(self, event: EventConfig, link: str, cursor: Mapping[str, str]) -> Iterator[Page]:
        """The submission and its comment tree, then hidden comments oldest id first within the budget."""
        kind = f"thread {link} seen_to"
        seen_to = id_number(cursor.get(kind, "0")) or 0
        label = f"{self.name}@thread {link}"
        payload = self._get(f"/comments/{link}", {"sort": "new", "limit": THREAD_LIMIT}, f"thread {link}")
        submission, tree = _thread_parts(payload)
        comments, stubs = flatten_tree(tree)
        hidden = _Hidden(seen_to)
        hidden.add(comments, stubs)
        posts, skipped, _ = self._posts([*submission, *comments], event, None)
        yield Page(posts, {kind: hidden.cursor()}, read=len(comments) + len(submission), skipped=skipped, feed=label)
        requests = 0
        while hidden.waiting() and requests < self.settings.max_more_requests and not self.stopping():
            comments, stubs = flatten_tree(self._more(link, hidden))
            requests += 1
            hidden.add(comments, stubs)
            posts, skipped, _ = self._posts(comments, event, None)
            yield Page(posts, {kind: hidden.cursor()}, read=len(comments), skipped=skipped, feed=label)
        _log_thread(event, link, hidden, requests)

    def _more(self, link: str, hidden: _Hidden) -> list[Any]:
        """One request for hidden comments: up to 100 ids by /api/morechildren, or a "continue this thread"."""
        ids = hidden.next_ids(MORE_BATCH)
        if ids:
            params = {"link_id": f"t3_{link}", "children": ",".join(ids), "sort": "new", "api_type": "json"}
            return morechildren_things(self._get("/api/morechildren", params, f"thread {link}"))
        parent = hidden.next_continuation()
        payload = self._get(f"/comments/{link}", {"comment": parent, "sort": "new"}, f"thread {link}")
        return _thread_parts(payload)[1]

    # ---- listings ----------------------------------------------------------------------------

    def _listing(self, event: EventConfig, listing: Listing, cursor: Mapping[str, str]) -> Iterator[Page]:
        since = cursor.get(listing.kind("since"))
        after = cursor.get(listing.kind("after"))
        pending = cursor.get(listing.kind("pending")) if after else None
        matcher = compile_query(event.query_for(self.name)) if listing.filtered else None
        seen: set[str] = set()
        fetched = 0
        while not self.stopping():
            things, next_after = listing_page(
                self._get(listing.path, self._listing_params(event, listing, after), listing.label)
            )
            fresh, reached_since = _newer(things, since, seen)
            pending = _newest(fresh, pending)
            fetched += len(things)
            posts, skipped, older = self._posts(fresh, event, matcher)
            finished = reached_since or older or next_after is None or not things
            if finished and not (reached_since or older) and _at_listing_limit(fetched):
                _log_listing_limit(event, listing, fetched, fresh or things)
            after = None if finished else next_after
            yield Page(
                posts, _cursor(listing, since, after, pending), read=len(fresh), skipped=skipped,
                feed=f"{self.name}@{listing.label}",
            )  # fmt: skip
            if finished:
                return

    def _listing_params(self, event: EventConfig, listing: Listing, after: str | None) -> dict[str, str | int]:
        params: dict[str, str | int] = {"limit": PAGE_SIZE}
        if after:
            params["after"] = after
        if listing.path == "/search":
            params |= {"q": event.query_for(self.name), "sort": "new", "type": "link", "restrict_sr": "false"}
        return params

    # ---- posts -------------------------------------------------------------------------------

    def _posts(self, things: list[Any], event: EventConfig, matcher: Matcher | None) -> tuple[list[Post], int, bool]:
        """(posts inside the event's window that match, malformed things skipped, whether the start was passed)."""
        start, end = self._window(event)
        posts, skipped, older = [], 0, False
        for item in normalize_things(things, datetime.now(UTC)):
            if isinstance(item, str):
                skipped += 1
                log.warning("skipped a malformed Reddit thing: %s", item)
            elif item.created_at < start:
                older = True
            elif item.created_at < end and (matcher is None or matcher(item.text)):
                posts.append(item)
        return posts, skipped, older

    def _window(self, event: EventConfig) -> tuple[datetime, datetime]:
        return window_of(event, self.tz)

    # ---- requests ----------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str | int], what: str) -> Any:
        """One GET through PRAW (OAuth, token refresh), paced by the rate-limit headers, retried by our policy."""

        def call() -> Any:
            return self.reddit.request(method="GET", path=path, params=dict(params))

        try:
            return call_with_retries(call, _classify, self.policy, self.stop)
        except prawcore.PrawcoreException as error:
            raise _clear_error(error, what, self.settings) from None

    def respect_rate_limit(self, remaining: int | None, reset_at: float | None) -> None:
        """Wait for the reset when X-Ratelimit-Remaining of the last answer is nearly used up."""
        if remaining is None or reset_at is None or remaining >= self.settings.min_remaining_requests:
            return
        delay = rate_limit_delay(reset_at, time.time(), 0, self.policy)
        log.warning("reddit: %s requests left; waiting %.0fs for the rate-limit reset", remaining, delay)
        wait(delay, self.stop, "waiting for Reddit's rate limit")


class _Hidden:
    """The comments of one thread hidden behind "more" stubs that are still to be read this run."""

    def __init__(self, seen_to: int) -> None:
        self.seen_to = seen_to  # hidden comments with ids up to this were read by an earlier run
        self.read: set[int] = set()
        self.newest = seen_to
        self._ids: list[tuple[int, str]] = []  # heap of (number, base36 id)
        self._queued: set[int] = set()
        self._continuations: list[str] = []
        self._continued: set[str] = set()

    def add(self, comments: list[Any], stubs: list[MoreStub]) -> None:
        for comment in comments:
            number = id_number(str(_data(comment).get("name") or _data(comment).get("id") or ""))
            if number is not None:
                self.read.add(number)
                self.newest = max(self.newest, number)
        for stub in stubs:
            if not stub.children and stub.parent_id and stub.parent_id not in self._continued:
                self._continued.add(stub.parent_id)
                self._continuations.append(stub.parent_id.rsplit("_", 1)[-1])
            for child in stub.children:
                number = id_number(child)
                if (
                    number is not None
                    and number > self.seen_to
                    and number not in self.read
                    and number not in self._queued
                ):
                    self._queued.add(number)
                    heapq.heappush(self._ids, (number, child))

    def waiting(self) -> bool:
        return bool(self._ids or self._continuations)

    def next_ids(self, size: int) -> list[str]:
        return [heapq.heappop(self._ids)[1] for _ in range(min(size, len(self._ids)))]

    def next_continuation(self) -> str:
        return self._continuations.pop(0)

    def left(self) -> int:
        return len(self._ids)

    def cursor(self) -> str:
        """The new seen_to: below the oldest hidden comment not read yet, or the newest comment when all are read."""
        mark = self._ids[0][0] - 1 if self._ids else self.newest
        return _base36(max(mark, self.seen_to))


class _PacedRateLimiter(RateLimiter):
    """prawcore's rate limiter with our policy: a wait only when few requests are left, interruptible, bounded.

    prawcore's own spreads requests over the window and sleeps uninterruptibly for as long as Reddit says.
    """

    def __init__(self, source: RedditSource) -> None:
        super().__init__(window_size=600)
        self.source = source
        self.reset_at: float | None = None

    def delay(self) -> None:
        self.source.respect_rate_limit(self.remaining, self.reset_at)

    def update(self, *, response_headers: Mapping[str, str]) -> None:
        remaining, reset = response_headers.get("x-ratelimit-remaining"), response_headers.get("x-ratelimit-reset")
        try:
            self.remaining = int(float(remaining)) if remaining is not None else None
            self.reset_at = time.time() + float(reset) if reset is not None else None
        except ValueError:
            self.remaining = self.reset_at = None


class _SingleAttempt(FiniteRetryStrategy):
    """No retries inside prawcore: ours (call_with_retries) are bounded, interruptible and logged."""

    def _sleep_seconds(self) -> float | None:
        return None

    def should_retry_on_failure(self) -> bool:
        return False


class _Requestor(prawcore.Requestor):
    """prawcore's requestor with our timeout on every request (prawcore otherwise always asks for 16 s)."""

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        return super().request(*args, timeout=self.timeout, **kwargs)


def _client(settings: RedditSourceConfig, credentials: Credentials, limiter: RateLimiter) -> praw.Reddit:
    """A PRAW client on the configured hosts; read-only (app-only OAuth) unless a user is given."""
    reddit = praw.Reddit(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        username=credentials.username,
        password=credentials.password,
        user_agent=settings.user_agent,
        oauth_url=settings.oauth_url.rstrip("/"),
        reddit_url=settings.reddit_url.rstrip("/"),
        check_for_updates=False,  # PRAW would ask PyPI at start-up
        check_for_async=False,
        requestor_class=_Requestor,
        requestor_kwargs={"timeout": settings.timeout.total_seconds(), "session": limited_session()},
    )
    for core in _sessions(reddit):
        core._rate_limiter = limiter
        core._retry_strategy_class = _SingleAttempt
    return reddit


def _sessions(reddit: praw.Reddit) -> list[Any]:
    """PRAW's prawcore sessions: the read-only one, and the user's when a script app logs in."""
    return [core for core in (reddit._read_only_core, reddit._authorized_core) if core is not None]


def _check_threads(settings: RedditSourceConfig) -> None:
    """Every thread reference is a URL or id, or the config is wrong (exit code 2, naming the entry)."""
    for event_name, references in settings.threads.items():
        for index, reference in enumerate(references):
            try:
                thread_id(reference)
            except ValueError as error:
                raise ConfigError(f"sources.reddit.threads.{event_name}[{index}]: {error}") from None


def _credentials(settings: RedditSourceConfig) -> Credentials:
    client_id = os.environ.get(settings.client_id_env) or ""
    secret = os.environ.get(settings.client_secret_env) or ""
    missing = [
        f"${name}"
        for name, value in ((settings.client_id_env, client_id), (settings.client_secret_env, secret))
        if not value
    ]
    if missing:
        raise NotConfiguredError(
            f"Reddit source skipped: {' and '.join(missing)} not set (create a script app at "
            "https://www.reddit.com/prefs/apps and export its id and secret)"
        )
    username = os.environ.get(settings.username_env) or None
    password = os.environ.get(settings.password_env) or None
    if username and not password:
        log.warning(
            "reddit: $%s is set but $%s is not; reading without a user", settings.username_env, settings.password_env
        )
        username = None
    return Credentials(client_id, secret, username, password if username else None)


def _thread_parts(payload: Any) -> tuple[list[Any], list[Any]]:
    """A /comments/<id> answer ([submission Listing, comments Listing]) → ([submission], top-level things)."""
    if not isinstance(payload, list) or len(payload) != 2:
        raise SourceError("Reddit answered a thread request with something other than two listings")
    return listing_page(payload[0])[0], listing_page(payload[1])[0]


def _data(thing: Any) -> Mapping[str, Any]:
    data = thing.get("data") if isinstance(thing, Mapping) else None
    return data if isinstance(data, Mapping) else {}


def _fullname(thing: Any) -> str | None:
    name = _data(thing).get("name")
    return name if isinstance(name, str) else None


def _newer(things: list[Any], since: str | None, seen: set[str]) -> tuple[list[Any], bool]:
    """The things newer than `since` not met earlier in this run (page edges repeat), and whether `since` was reached."""
    bound = id_number(since) if since else None
    fresh, reached = [], False
    for thing in things:
        name = _fullname(thing)
        number = id_number(name) if name else None
        if bound is not None and number is not None and number <= bound:
            reached = True
            continue
        if name is not None and name in seen:
            continue
        if name is not None:
            seen.add(name)
        fresh.append(thing)
    return fresh, reached


def _newest(things: list[Any], pending: str | None) -> str | None:
    names = [name for name in map(_fullname, things) if name and id_number(name) is not None]
    if pending:
        names.append(pending)
    return max(names, key=lambda name: id_number(name) or 0, default=None)


def _cursor(listing: Listing, since: str | None, after: str | None, pending: str | None) -> dict[str, str | None]:
    """In progress: after and the pending since; finished: since moves to the newest item read."""
    if after is not None:
        return {listing.kind("after"): after, listing.kind("pending"): pending}
    finished: dict[str, str | None] = {listing.kind("after"): None, listing.kind("pending"): None}
    if pending is not None and (since is None or (id_number(pending) or 0) > (id_number(since) or 0)):
        finished[listing.kind("since")] = pending
    return finished


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text


def _log_thread(event: EventConfig, link: str, hidden: _Hidden, requests: int) -> None:
    if hidden.left():
        log.warning(
            "reddit %s: thread %s: %d hidden comments left for the next run (max_more_requests %d spent)",
            event.name, link, hidden.left(), requests,
        )  # fmt: skip
    else:
        log.info(
            "reddit %s: thread %s read, %d comments, %d requests for hidden ones",
            event.name,
            link,
            len(hidden.read),
            requests,
        )


def _at_listing_limit(fetched: int) -> bool:
    """A listing that ended after about 1,000 items stopped at Reddit's limit, not at its first item."""
    return LISTING_NEAR_LIMIT <= fetched <= LISTING_LIMIT + PAGE_SIZE


def _log_listing_limit(event: EventConfig, listing: Listing, fetched: int, things: list[Any]) -> None:
    times = [_data(t).get("created_utc") for t in things]
    oldest = min((float(t) for t in times if isinstance(t, int | float)), default=None)
    since = f" older than {datetime.fromtimestamp(oldest, UTC):%Y-%m-%d %H:%M} UTC" if oldest is not None else ""
    log.warning(
        "reddit %s: %s ended after %d items, Reddit's listing limit (about %d): items%s cannot be read; "
        "Reddit cannot be backfilled beyond its listings",
        event.name, listing.label, fetched, LISTING_LIMIT, since,
    )  # fmt: skip


def _classify(error: Exception) -> Verdict:
    """429 (until X-Ratelimit-Reset), 5xx, dropped connections, garbage bodies and an expired token pass if we wait."""
    if isinstance(error, prawcore.TooManyRequests):
        reset = error.response.headers.get("x-ratelimit-reset")
        return RateLimited(time.time() + float(reset) if reset and _is_number(reset) else None)
    if isinstance(error, prawcore.ServerError):
        return Transient(f"Reddit answered HTTP {error.response.status_code}")
    if isinstance(error, prawcore.RequestException):
        return cannot_connect(error, "oauth.reddit.com")  # the failed request names the host
    if isinstance(error, prawcore.BadJSON):
        return Transient("Reddit answered with a body that is not JSON")
    if isinstance(error, prawcore.ResponseException) and error.response.status_code in (500, 502, 503, 504, 520, 522):
        return Transient(f"Reddit answered HTTP {error.response.status_code}")
    if isinstance(error, prawcore.InvalidToken):
        return Transient("Reddit's access token expired; asking for a new one")  # prawcore dropped it: it asks again
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _clear_error(error: Exception, what: str, settings: RedditSourceConfig) -> SourceError:
    """prawcore's errors → one line naming the feed (and the variables), never a secret."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    app = f"${settings.client_id_env} / ${settings.client_secret_env}"
    if isinstance(error, prawcore.OAuthException):
        return SourceError(
            f"Reddit refused the login in ${settings.username_env} / ${settings.password_env} ({error.error}); "
            "a script app's user must be one of its developers"
        )
    if status == 401:
        return SourceError(f"Reddit refused the app credentials in {app} (HTTP 401)")
    if status == 403:
        return SourceError(
            f"{what}: Reddit refused access (HTTP 403): private, banned or quarantined, or the app lacks access"
        )
    if status == 404 or isinstance(error, prawcore.Redirect):
        return SourceError(f"{what}: not found on Reddit (HTTP {status})")
    return SourceError(f"{what}: Reddit refused the request (HTTP {status}): {str(error)[:200]}")
