"""The Bluesky collector: searchPosts through the atproto SDK (logged in, session kept), or the Jetstream firehose.

Search cursor kinds per event: `since` (the newest post time of the last finished run), and while a run is
in progress `cursor` (searchPosts' page cursor), `until` (the time page: search stops near 10,000 results,
so a long window is read again below the oldest post seen) and `pending_since`. Only a finished run moves
`since`, so a killed run resumes where its last stored page ended. Stream mode stores Jetstream's `time_us`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pydantic
from atproto import Client, Session, SessionEvent, models
from atproto_client import exceptions as atproto_errors
from atproto_client.request import Request, Response

from monitor.config import BlueskySourceConfig, Config, EventConfig, to_aware, window_of
from monitor.errors import NotAPageError, NotConfiguredError, SourceError
from monitor.posts import Post, parse_timestamp
from monitor.sources.answer_limit import httpx_answer_hooks
from monitor.sources.base import Page, Source, environment
from monitor.sources.bluesky_payloads import (
    POST_COLLECTION,
    MalformedPostError,
    normalize_jetstream_event,
    normalize_search_page,
)
from monitor.sources.query import Matcher, compile_query
from monitor.sources.redaction import redact_in_logs
from monitor.sources.retry import (
    GaveUpError,
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

SEARCH_METHOD = "app.bsky.feed.searchPosts"
PAGE_SIZE = 100  # the most searchPosts returns per page
SESSION_ERRORS = {"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"}
TIME_STEP = timedelta(milliseconds=1)  # `until` is exclusive: one millisecond more keeps posts of that instant


class BlueskySource(Source):
    """Bluesky posts matching the event's query: searchPosts newest first, or Jetstream filtered locally."""

    name = "bluesky"

    def __init__(self, settings: BlueskySourceConfig, handle: str | None, password: str | None, tz: Any = UTC) -> None:
        if password:
            redact_in_logs(password)
        self.settings = settings
        self.handle = handle
        self.password = password
        self.tz = tz
        self.read_limit = settings.max_posts_per_run if settings.mode == "search" else None
        self.policy = RetryPolicy.from_settings(settings)
        self._client: Client | None = None
        self._from_saved_session = False

    @classmethod
    def from_config(cls, config: Config) -> BlueskySource:
        settings = config.sources.bluesky
        if settings.mode == "stream":  # Jetstream is public: no account needed
            return cls(settings, None, None, config.tz)
        handle, password = environment(settings.handle_env), environment(settings.app_password_env)
        missing = [
            name for name, value in ((settings.handle_env, handle), (settings.app_password_env, password)) if not value
        ]
        if missing:
            names = " and ".join(f"${name}" for name in missing)
            raise NotConfiguredError(
                f"Bluesky source skipped: {names} not set (search needs a handle and an app password; "
                "or set sources.bluesky.mode: stream)"
            )
        return cls(settings, handle, password, config.tz)

    def close(self) -> None:
        if self._client is not None:
            self._client.request.close()

    def search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        if self.settings.mode == "stream":
            return self._stream(event, cursor)
        return self._search(event, cursor)

    # ---- search ------------------------------------------------------------------------------

    def _search(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Pages newest first; `since` stays fixed during a run, `cursor` and `until` walk back in time."""
        run = _SearchRun(
            since=cursor.get("since") or _stamp(self._window_start(event)),
            until=cursor.get("until") or self._window_end(event),
            page_cursor=cursor.get("cursor"),
            pending=cursor.get("pending_since"),
        )
        read = 0
        while not self.stopping():
            if self.read_limit is not None and read >= self.read_limit:
                log.info(
                    "bluesky %s: read limit of %s posts reached; the next run resumes", event.name, self.read_limit
                )
                return
            size = PAGE_SIZE if self.read_limit is None else max(1, min(PAGE_SIZE, self.read_limit - read))
            body, headers = self._fetch(run.params(event.query_for(self.name), size))
            page = run.advance(body, self.name)
            read += page.read
            yield page
            if run.finished:
                return
            self._respect_rate_limit(headers)

    def _window_start(self, event: EventConfig) -> datetime:
        return window_of(event, self.tz)[0]

    def _window_end(self, event: EventConfig) -> str | None:
        if event.end is not None and to_aware(event.end, self.tz) < datetime.now(UTC):
            return _stamp(to_aware(event.end, self.tz))
        return None

    # ---- requests and the login session ------------------------------------------------------

    def _fetch(self, params: dict[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, str]]:
        """One searchPosts call, retried on transient errors; an expired saved session falls back to a login."""
        try:
            return self._fetch_once(params)
        except atproto_errors.RequestErrorBase as error:
            if not (self._from_saved_session and _session_rejected(error)):
                raise self._clear_error(error) from None
        log.info("bluesky: the saved session was refused; logging in again with $%s", self.settings.app_password_env)
        self._forget_session()
        try:
            return self._fetch_once(params)
        except atproto_errors.RequestErrorBase as error:
            raise self._clear_error(error) from None

    def _fetch_once(self, params: dict[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, str]]:
        def call() -> Response:
            response = self._logged_in().invoke_query(
                SEARCH_METHOD, params=models.AppBskyFeedSearchPosts.Params(**params)
            )
            if not isinstance(response.content, Mapping):
                raise NotAPageError
            return response

        response = call_with_retries(call, _classify, self.policy, self.stop)
        assert isinstance(response.content, Mapping)
        return response.content, response.headers

    def _logged_in(self) -> Client:
        """The client, logged in from the saved session when there is one, else with the app password."""
        if self._client is not None:
            return self._client
        request = Request(timeout=self.settings.timeout.total_seconds(), event_hooks=httpx_answer_hooks())
        client = Client(base_url=self.settings.api_base, request=request)
        client.on_session_change(self._save_session)
        saved = self.sessions.get_session(self.name, self.handle or "") if self.sessions is not None else None
        if saved:
            redact_in_logs(saved)
            client.login(session_string=saved, fetch_bsky_profile=False)
            self._from_saved_session = True
            log.debug("bluesky: reusing the saved session of %s", self.handle)
        else:
            log.info("bluesky: logging in as %s", self.handle)
            call_with_retries(
                lambda: client.login(self.handle, self.password, fetch_bsky_profile=False),
                _classify,
                self.policy,
                self.stop,
            )
            self._from_saved_session = False
        self._client = client
        return client

    def _save_session(self, event: SessionEvent, session: Session) -> None:
        """Keep the new or refreshed session for the next run: Bluesky allows about 300 logins a day."""
        for secret in (session.access_jwt, session.refresh_jwt, session.export()):
            redact_in_logs(secret)
        if event in (SessionEvent.CREATE, SessionEvent.REFRESH) and self.sessions is not None:
            self.sessions.set_session(self.name, self.handle or "", session.export())
            log.debug("bluesky: session %s and saved", event.value)

    def _forget_session(self) -> None:
        if self.sessions is not None:
            self.sessions.set_session(self.name, self.handle or "", None)
        if self._client is not None:
            self._client.request.close()
        self._client, self._from_saved_session = None, False

    def _respect_rate_limit(self, headers: Mapping[str, str]) -> None:
        """Wait for the reset when the RateLimit-Remaining header says no request is left."""
        remaining, reset = headers.get("ratelimit-remaining"), headers.get("ratelimit-reset")
        if remaining is None or not remaining.strip().isdigit() or int(remaining) > 0:
            return
        reset_at = float(reset) if reset and reset.strip().isdigit() else None
        delay = rate_limit_delay(reset_at, time.time(), 0, self.policy)
        log.warning("bluesky: rate limit used up; waiting %.0fs for the reset", delay)
        wait(delay, self.stop, "waiting for the Bluesky rate limit")

    def _clear_error(self, error: atproto_errors.RequestErrorBase) -> SourceError:
        """atproto's errors → one line that names the variables, never the password or tokens."""
        status = error.response.status_code if error.response is not None else None
        detail = _error_detail(error)
        if isinstance(error, atproto_errors.UnauthorizedError) or detail.split(":")[0] in SESSION_ERRORS:
            return SourceError(
                f"Bluesky refused the login of ${self.settings.handle_env} with ${self.settings.app_password_env} "
                f"(HTTP {status}: {detail})"
            )
        return SourceError(f"Bluesky refused the request (HTTP {status}): {detail}")

    # ---- stream ------------------------------------------------------------------------------

    def _stream(self, event: EventConfig, cursor: Mapping[str, str]) -> Iterator[Page]:
        """Jetstream from the stored time_us, filtered by the query, for a bounded time and number of events."""
        reader = _StreamRun(self.settings, compile_query(event.query_for(self.name)), cursor.get("time_us"), self.name)
        attempt = 0
        while not reader.done() and not self.stopping():
            try:
                yield from reader.read_connection(self.stopping)
                attempt = 0
            except (OSError, TimeoutError, _websocket_errors()) as error:
                verdict = cannot_connect(error, self.settings.stream_url)
                if attempt >= self.policy.retries:
                    raise GaveUpError(f"gave up after {attempt + 1} attempts: {verdict.reason}") from None
                delay = rate_limit_delay(None, time.time(), attempt, self.policy)
                log.warning("%s; reconnecting in %.1fs", verdict.reason, delay)
                wait(delay, self.stop, "waiting to reconnect to Jetstream")
                attempt += 1
        yield from reader.flush()


class _SearchRun:
    """The state of one search run: the bounds, the page cursor, the posts seen, what to store per page."""

    def __init__(self, since: str, until: str | None, page_cursor: str | None, pending: str | None) -> None:
        self.since, self.until, self.page_cursor, self.pending = since, until, page_cursor, pending
        self.seen: set[str] = set()
        self.chain_new = 0  # unseen posts read since the last time page started
        self.chain_oldest: datetime | None = None
        self.finished = False

    def params(self, query: str, size: int) -> dict[str, Any]:
        params: dict[str, Any] = {"q": query, "sort": "latest", "limit": size, "since": self.since}
        return params | {k: v for k, v in (("until", self.until), ("cursor", self.page_cursor)) if v}

    def advance(self, body: Mapping[str, Any], source: str) -> Page:
        """Take in one answer; decide the next request; return the page with the cursor to store."""
        collected_at = datetime.now(UTC)
        posts, skipped = [], 0
        for item in normalize_search_page(body, collected_at, source):
            if isinstance(item, str):
                skipped += 1
                log.warning("skipped a malformed Bluesky post: %s", item)
            elif item.id not in self.seen:
                posts.append(item)
        self._note_times(body, {post.id for post in posts})
        self.seen.update(post.id for post in posts)
        self.chain_new += len(posts)
        next_cursor = body.get("cursor")
        if isinstance(next_cursor, str) and next_cursor and body.get("posts"):
            self.page_cursor = next_cursor
        elif self.chain_new and self.chain_oldest is not None:
            self._next_time_page()
        else:
            self.finished = True
        views = body.get("posts")
        return Page(posts, self._cursor(), read=len(views) if isinstance(views, list) else 0, skipped=skipped)

    def _note_times(self, body: Mapping[str, Any], fresh: set[str]) -> None:
        """Track the newest sort time (the next run's `since`) and the oldest (this run's next `until`)."""
        views = body.get("posts")
        for view in views if isinstance(views, list) else []:
            moment = _sort_time(view)
            if moment is None or not isinstance(view, Mapping) or view.get("uri") not in fresh:
                continue
            if self.pending is None or moment > parse_timestamp(self.pending):
                self.pending = _stamp(moment)
            if self.chain_oldest is None or moment < self.chain_oldest:
                self.chain_oldest = moment

    def _next_time_page(self) -> None:
        assert self.chain_oldest is not None
        self.until = _stamp(self.chain_oldest + TIME_STEP)
        self.page_cursor, self.chain_new, self.chain_oldest = None, 0, None

    def _cursor(self) -> dict[str, str | None]:
        if self.finished:
            return {"cursor": None, "until": None, "pending_since": None, "since": self.pending or self.since}
        return {"cursor": self.page_cursor, "until": self.until, "pending_since": self.pending}


class _StreamRun:
    """Reads Jetstream for one collect run, across reconnects, cutting pages every `stream_page_events`."""

    def __init__(self, settings: BlueskySourceConfig, matcher: Matcher, time_us: str | None, source: str) -> None:
        self.settings, self.matcher, self.time_us, self.source = settings, matcher, time_us, source
        self.deadline = time.monotonic() + settings.stream_max_duration.total_seconds()
        self.events = 0
        self.posts: list[Post] = []
        self.page_events = self.page_read = self.skipped = 0

    def done(self) -> bool:
        return self.events >= self.settings.stream_max_events or time.monotonic() >= self.deadline

    def url(self) -> str:
        query = {"wantedCollections": POST_COLLECTION} | ({"cursor": self.time_us} if self.time_us else {})
        separator = "&" if "?" in self.settings.stream_url else "?"
        return self.settings.stream_url + separator + urlencode(query)

    def read_connection(self, stopping: Callable[[], bool]) -> Iterator[Page]:
        from websockets.sync.client import connect

        timeout = self.settings.timeout.total_seconds()
        with connect(self.url(), open_timeout=timeout, close_timeout=1, max_size=2**22) as socket:
            while not self.done() and not stopping():
                try:
                    message = socket.recv(timeout=max(0.05, min(1.0, self.deadline - time.monotonic())))
                except TimeoutError:
                    continue
                self._take(message)
                if self.page_events >= self.settings.stream_page_events:
                    yield self._page()

    def flush(self) -> Iterator[Page]:
        if self.page_events:
            yield self._page()

    def _take(self, message: str | bytes) -> None:
        self.events += 1
        self.page_events += 1
        try:
            event = json.loads(message)
            post = normalize_jetstream_event(event, datetime.now(UTC), self.source)
        except (ValueError, MalformedPostError, RecursionError) as error:
            self.skipped += 1
            log.warning("skipped a malformed Jetstream event: %s", error)
            return
        if isinstance(event, Mapping) and isinstance(event.get("time_us"), int):
            self.time_us = str(event["time_us"])
        if post is not None:
            self.page_read += 1
            if self.matcher(post.text):
                self.posts.append(post)

    def _page(self) -> Page:
        page = Page(self.posts, {"time_us": self.time_us}, read=self.page_read, skipped=self.skipped)
        self.posts, self.page_events, self.page_read, self.skipped = [], 0, 0, 0
        return page


def _websocket_errors() -> type[Exception]:
    from websockets.exceptions import WebSocketException

    return WebSocketException


def _classify(error: Exception) -> Verdict:
    """Which errors pass if we wait: 429 (until RateLimit-Reset), 5xx, dropped connections, garbage bodies."""
    if isinstance(error, atproto_errors.RateLimitExceededError):
        return RateLimited(_reset_at(error.response))
    if isinstance(error, NotAPageError):
        return Transient("Bluesky answered with a body that is not a JSON object")
    if isinstance(error, ValueError) and not isinstance(error, pydantic.ValidationError):  # atproto's JSON reader
        return Transient("Bluesky answered with a body that is not JSON")
    if isinstance(error, httpx.TransportError):  # e.g. the server closed the connection without answering
        return cannot_connect(error, "bsky.social")
    if isinstance(error, atproto_errors.RequestErrorBase):
        response = error.response
        if response is None:
            return cannot_connect(error, "bsky.social")  # the failed request names the configured api_base
        if response.status_code >= 500:
            return Transient(f"Bluesky answered HTTP {response.status_code}")
    return None


def _reset_at(response: Response | None) -> float | None:
    value = response.headers.get("ratelimit-reset") if response is not None else None
    return float(value) if isinstance(value, str) and value.strip().isdigit() else None


def _session_rejected(error: atproto_errors.RequestErrorBase) -> bool:
    if isinstance(error, atproto_errors.UnauthorizedError):
        return True
    return _error_detail(error).split(":")[0] in SESSION_ERRORS


def _error_detail(error: atproto_errors.RequestErrorBase) -> str:
    content = error.response.content if error.response is not None else None
    code = getattr(content, "error", None)
    message = getattr(content, "message", None)
    if code:
        return f"{code}: {message}"[:300] if message else str(code)
    return error.__class__.__name__


def _sort_time(view: Any) -> datetime | None:
    """When search sorts a post: the earlier of its createdAt and indexedAt (backdated posts sort as indexed)."""
    if not isinstance(view, Mapping):
        return None
    record = view.get("record")
    stamps = [record.get("createdAt") if isinstance(record, Mapping) else None, view.get("indexedAt")]
    moments = [moment for moment in map(_moment_or_none, stamps) if moment is not None]
    return min(moments) if moments else None


def _moment_or_none(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str):
        return None
    try:
        return parse_timestamp(stamp)
    except ValueError:
        return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
