"""A fake Mastodon instance on 127.0.0.1: hashtag timelines, search v2, instance info, Link and rate-limit headers.

Statuses are the real JSON shape (HTML content, account with `bot`, counts, reblog). Timelines page
newest first with since_id/max_id/min_id and answer a `Link` header (rel next/prev) like Mastodon;
every answer carries X-RateLimit-Limit/Remaining/Reset.

    with FakeMastodon() as instance:
        instance.add_statuses(make_statuses(100, instance.host))
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.fake_http import Answer, FakeJsonApi

BASE_ID = 109_000_000_000_000_000
BASE_TIME = datetime(2012, 12, 17, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_statuses(
    count: int,
    host: str,
    first: int = 0,
    tag: str = "instagram",
    start: datetime = BASE_TIME,
    every: timedelta = timedelta(minutes=1),
    bots: Iterable[int] = (),
    time_ids: bool = False,
) -> list[dict[str, Any]]:
    """`count` statuses with increasing ids, by five accounts; numbers in `bots` are posted by a bot account.

    Ids are BASE_ID + number, or with `time_ids` Mastodon's own shape: the post's time in ms, shifted 16 bits.
    """
    bot_numbers = set(bots)
    statuses = []
    for number in range(first, first + count):
        moment = start + every * number
        status_id = (
            str((round(moment.timestamp() * 1000) << 16) + number % 65536) if time_ids else str(BASE_ID + number)
        )
        user = "newsbot" if number in bot_numbers else f"user{number % 5}"
        statuses.append(
            {
                "id": status_id,
                "created_at": iso(moment),
                "in_reply_to_id": None,
                "in_reply_to_account_id": None,
                "sensitive": False,
                "spoiler_text": "",
                "visibility": "public",
                "language": "en",
                "uri": f"https://{host}/users/{user}/statuses/{status_id}",
                "url": f"https://{host}/@{user}/{status_id}",
                "replies_count": 1,
                "reblogs_count": number % 3,
                "favourites_count": number % 7,
                "edited_at": None,
                "content": (
                    f'<p>Post {number}: quitting <a href="https://{host}/tags/{tag}" class="mention hashtag" '
                    f'rel="tag">#<span>{tag}</span></a> &amp; its &quot;new&quot; terms</p>'
                ),
                "reblog": None,
                "account": {
                    "id": str(1000 + number % 5),
                    "username": user,
                    "acct": user,
                    "display_name": user.title(),
                    "bot": number in bot_numbers,
                    "followers_count": 10 * (number % 5),
                    "url": f"https://{host}/@{user}",
                },
                "media_attachments": [],
                "mentions": [],
                "tags": [{"name": tag, "url": f"https://{host}/tags/{tag}"}],
                "emojis": [],
                "card": None,
                "poll": None,
            }
        )
    return statuses


class FakeMastodon(FakeJsonApi):
    """One instance; `token` is the access token it accepts (search needs it)."""

    def __init__(self, token: str = "fake-mastodon-token") -> None:
        super().__init__()
        self.token = token
        self.statuses: list[dict[str, Any]] = []
        self.rate_remaining = 300
        self.rate_reset_in = timedelta(seconds=1)

    def add_statuses(self, statuses: Iterable[dict[str, Any]]) -> None:
        with self.lock:
            self.statuses.extend(statuses)

    def timeline_requests(self) -> list[Any]:
        return self.requests_to("/api/v1/timelines/tag/")

    def answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        limits = self._rate_headers()
        authorization = headers.get("authorization")
        if authorization is not None and authorization != f"Bearer {self.token}":
            return 401, {"error": "The access token is invalid"}, limits
        if path.rstrip("/") in ("/api/v1/instance", "/api/v2/instance"):
            return (
                200,
                {
                    "uri": self.host,
                    "domain": self.host,
                    "title": "Fake",
                    "version": "4.3.2",
                    "api_versions": {"mastodon": 2},
                },
                limits,
            )
        if path.startswith("/api/v1/timelines/tag/"):
            return self._timeline(path.rsplit("/", 1)[-1], params, limits)
        if path == "/api/v2/search":
            if authorization is None:
                return 401, {"error": "The access token is invalid"}, limits
            return 200, {"accounts": [], "statuses": self._search(params), "hashtags": []}, limits
        return 404, {"error": "Record not found"}, limits

    def _rate_headers(self) -> dict[str, str]:
        with self.lock:
            self.rate_remaining = max(0, self.rate_remaining - 1)
            remaining = self.rate_remaining
        reset = datetime.now(UTC) + self.rate_reset_in
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def _select(self, params: dict[str, str], tag: str | None, query: str | None) -> list[dict[str, Any]]:
        lower = int(params.get("since_id") or params.get("min_id") or 0)
        upper = int(params["max_id"]) if "max_id" in params else None
        with self.lock:
            statuses = list(self.statuses)
        chosen = [
            s
            for s in statuses
            if _id(s) > lower
            and (upper is None or _id(s) < upper)
            and (tag is None or any(t.get("name") == tag for t in s.get("tags") or []))
            and (query is None or query in str(s.get("content", "")).lower())
        ]
        chosen.sort(key=_id, reverse=True)
        return chosen[: min(40, int(params.get("limit", 20)))]

    def _timeline(self, tag: str, params: dict[str, str], limits: dict[str, str]) -> Answer:
        page = self._select(params, tag, None)
        headers = dict(limits)
        if page:
            base = f"http://{self.host}/api/v1/timelines/tag/{tag}"
            older = urlencode({"max_id": page[-1]["id"]})
            newer = urlencode({"min_id": page[0]["id"]})
            headers["Link"] = f'<{base}?{older}>; rel="next", <{base}?{newer}>; rel="prev"'
        return 200, page, headers

    def _search(self, params: dict[str, str]) -> list[dict[str, Any]]:
        words = params.get("q", "").lower().split()
        found: list[dict[str, Any]] = []
        for word in words or [""]:  # any word of the query (a crude stand-in for full-text search)
            found += [s for s in self._select(params, None, word) if s not in found]
        return sorted(found, key=_id, reverse=True)[: min(40, int(params.get("limit", 20)))]


def _id(status: Any) -> int:
    try:
        return int(status["id"])
    except (TypeError, KeyError, ValueError):
        return BASE_ID
