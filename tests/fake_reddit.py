"""A fake Reddit on 127.0.0.1 that PRAW really talks to: OAuth token, threads, morechildren, listings, search.

One server plays both hosts (`reddit_url` for the token, `oauth_url` for the API). Things are the real
JSON shape (`{"kind": "t1", "data": {...}}`, fullnames, created_utc, Markdown bodies with `&amp;`).
Ids are base36 numbers that grow with time, like Reddit's. A thread shows its newest comments up to
`shown` and hides the rest behind one "more" stub per shown parent (its `children` list every hidden
descendant), and comments deeper than `max_depth` behind "continue this thread". Listings page with
`after`, stop after `listing_cap` items (Reddit's ~1,000), and with `edge_duplicates` repeat the last
item of the previous page at the top of the next. Every API answer carries X-Ratelimit-* headers.

    with FakeReddit() as reddit:
        link = reddit.add_submission("instagram", "Instagram's new terms")
        reddit.add_comments(link, 30)
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fake_http import Answer, FakeJsonApi

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "reddit-client-secret-0123456789"
USERNAME = "monitor_bot"
PASSWORD = "reddit-password-9876543210"
ACCESS_TOKEN = "reddit-access-token-abcdef"
BASE_TIME = datetime(2012, 12, 17, 12, 0, tzinfo=UTC)
SUBMISSION_BASE = 36**5  # "10000": five base36 digits and up
COMMENT_BASE = 36**6


def b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text


class FakeReddit(FakeJsonApi):
    """Subreddits of submissions, each with comments; `shown`, `max_depth`, `listing_cap` shape the answers."""

    def __init__(self) -> None:
        super().__init__()
        self.submissions: dict[str, dict[str, Any]] = {}  # base36 id → data
        self.comments: dict[str, dict[str, Any]] = {}  # base36 id → data
        self.shown = 500  # comments a thread answer shows before hiding the rest behind "more"
        self.max_depth = 10  # deeper comments are behind "continue this thread"
        self.listing_cap = 1000
        self.edge_duplicates = False
        self.rate_remaining = 600.0
        self.rate_reset = 60
        self.tokens_issued = 0
        self._clock = 0  # minutes after BASE_TIME of the next thing

    # ---- data --------------------------------------------------------------------------------

    def _next_time(self, at: datetime | None) -> float:
        self._clock += 1
        return (at or BASE_TIME + timedelta(minutes=self._clock)).timestamp()

    def add_submission(
        self, subreddit: str, title: str, selftext: str = "", at: datetime | None = None, author: str = "op"
    ) -> str:
        """A submission; returns its base36 id. Numbers grow in the order things are added."""
        with self.lock:
            number = SUBMISSION_BASE + len(self.submissions)
            link = b36(number)
            self.submissions[link] = {
                "id": link, "name": f"t3_{link}", "subreddit": subreddit, "title": title, "selftext": selftext,
                "author": author, "created_utc": self._next_time(at), "score": 12, "num_comments": 0,
                "num_crossposts": 1, "permalink": f"/r/{subreddit}/comments/{link}/title/", "over_18": False,
                "selftext_html": None, "url": f"https://www.reddit.com/r/{subreddit}/comments/{link}/title/",
            }  # fmt: skip
        return link

    def add_comment(
        self, link: str, body: str, parent: str | None = None, at: datetime | None = None, author: str | None = None
    ) -> str:
        """A comment on a thread (a reply to `parent`, a base36 comment id, when given); returns its id."""
        with self.lock:
            number = COMMENT_BASE + len(self.comments)
            comment_id = b36(number)
            submission = self.submissions[link]
            submission["num_comments"] += 1
            depth = 0 if parent is None else self.comments[parent]["depth"] + 1
            self.comments[comment_id] = {
                "id": comment_id, "name": f"t1_{comment_id}", "link_id": f"t3_{link}",
                "parent_id": f"t1_{parent}" if parent else f"t3_{link}", "subreddit": submission["subreddit"],
                "author": author or f"user{number % 7}", "body": body, "created_utc": self._next_time(at),
                "score": number % 9 - 1, "depth": depth,
                "permalink": f"/r/{submission['subreddit']}/comments/{link}/title/{comment_id}/",
            }  # fmt: skip
        return comment_id

    def add_comments(self, link: str, count: int, parents: Iterable[str | None] = ()) -> list[str]:
        """`count` comments whose bodies say their number; the i-th replies to parents[i] when given."""
        chosen = list(parents)
        return [
            self.add_comment(
                link, f"Comment {n}: quitting Instagram &amp; its new terms", chosen[n] if n < len(chosen) else None
            )
            for n in range(count)
        ]

    def delete(self, comment_id: str, how: str = "[deleted]") -> None:
        with self.lock:
            self.comments[comment_id]["body"] = how
            if how == "[deleted]":
                self.comments[comment_id]["author"] = "[deleted]"

    # ---- HTTP --------------------------------------------------------------------------------

    def answer(self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        if path == "/api/v1/access_token":
            return self._token(headers, body or {})
        limits = self._rate_headers()
        if headers.get("authorization") != f"bearer {ACCESS_TOKEN}":
            return (
                401,
                {"message": "Unauthorized", "error": 401},
                limits | {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
            )
        parts = path.strip("/").split("/")
        if parts[0] == "comments" and len(parts) >= 2:
            return self._thread_answer(parts[1], params, limits)
        if path == "/api/morechildren":
            return 200, {"json": {"errors": [], "data": {"things": self._more(params)}}}, limits
        if parts[0] == "r" and len(parts) == 3 and parts[2] in ("new", "comments"):
            return 200, self._listing(self._subreddit_items(parts[1], parts[2]), params), limits
        if path == "/search":
            return 200, self._listing(self._search(params.get("q", "")), params), limits
        return 404, {"message": "Not Found", "error": 404}, limits

    def _token(self, headers: dict[str, str], form: dict[str, str]) -> Answer:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"message": "Unauthorized", "error": 401}, {}
        if form.get("grant_type") == "password" and (form.get("username"), form.get("password")) != (
            USERNAME,
            PASSWORD,
        ):
            return 200, {"error": "invalid_grant"}, {}
        self.tokens_issued += 1
        return 200, {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 86400, "scope": "*"}, {}

    def _rate_headers(self) -> dict[str, str]:
        with self.lock:
            self.rate_remaining = max(0.0, self.rate_remaining - 1)
            remaining = self.rate_remaining
        return {
            "x-ratelimit-remaining": f"{remaining:.1f}",
            "x-ratelimit-used": str(int(600 - remaining)),
            "x-ratelimit-reset": str(self.rate_reset),
        }

    # ---- threads -----------------------------------------------------------------------------

    def _thread_answer(self, link: str, params: dict[str, str], limits: dict[str, str]) -> Answer:
        if link not in self.submissions:
            return 404, {"message": "Not Found", "error": 404}, limits
        focus = params.get("comment")
        submission = {"kind": "Listing", "data": {"after": None, "children": [_thing("t3", self.submissions[link])]}}
        with self.lock:
            comments = [dict(c) for c in self.comments.values() if c["link_id"] == f"t3_{link}"]
        by_parent: dict[str, list[dict[str, Any]]] = {}
        for comment in sorted(comments, key=lambda c: c["created_utc"], reverse=True):
            by_parent.setdefault(comment["parent_id"], []).append(comment)
        root = f"t1_{focus}" if focus else f"t3_{link}"
        top = [self.comments[focus]] if focus else by_parent.get(root, [])
        shown = self._shown(top, by_parent, int(params.get("limit") or 200))
        tree = self._tree(top, by_parent, shown, root, 0)
        return 200, [submission, {"kind": "Listing", "data": {"after": None, "children": tree}}], limits

    def _shown(self, top: list[dict[str, Any]], by_parent: dict[str, list[dict[str, Any]]], limit: int) -> set[str]:
        """Breadth first, newest first among siblings, within `shown`, the limit and the depth."""
        shown: set[str] = set()
        level = list(top)
        depth = 0
        while level and depth < self.max_depth:
            following = []
            for comment in level:
                if len(shown) < min(self.shown, limit):
                    shown.add(comment["id"])
                    following += by_parent.get(comment["name"], [])
            level, depth = following, depth + 1
        return shown

    def _tree(
        self,
        level: list[dict[str, Any]],
        by_parent: dict[str, list[dict[str, Any]]],
        shown: set[str],
        parent: str,
        depth: int,
    ) -> list[dict[str, Any]]:
        things = []
        for comment in level:
            if comment["id"] not in shown:
                continue
            children = by_parent.get(comment["name"], [])
            if depth + 1 >= self.max_depth and children:
                replies = [
                    _thing(
                        "more",
                        {
                            "count": 0,
                            "name": "t1__",
                            "id": "_",
                            "parent_id": comment["name"],
                            "depth": depth + 1,
                            "children": [],
                        },
                    )
                ]
            else:
                replies = self._tree(children, by_parent, shown, comment["name"], depth + 1)
            data = comment | {
                "depth": depth,
                "replies": {"kind": "Listing", "data": {"after": None, "children": replies}} if replies else "",
            }
            things.append(_thing("t1", data))
        hidden = [c["id"] for c in self._descendants([c for c in level if c["id"] not in shown], by_parent, depth)]
        if hidden:
            things.append(
                _thing(
                    "more",
                    {
                        "count": len(hidden),
                        "name": f"t1_{hidden[0]}",
                        "id": hidden[0],
                        "parent_id": parent,
                        "depth": depth,
                        "children": hidden,
                    },
                )
            )
        return things

    def _descendants(
        self, level: list[dict[str, Any]], by_parent: dict[str, list[dict[str, Any]]], depth: int
    ) -> list[dict[str, Any]]:
        """Hidden comments with everything below them, above max_depth: one stub lists them all."""
        found = []
        pending = deque((c, depth) for c in level)
        while pending:
            comment, at = pending.popleft()
            found.append(comment)
            if at + 1 < self.max_depth:
                pending += [(child, at + 1) for child in by_parent.get(comment["name"], [])]
        return found

    def _more(self, params: dict[str, str]) -> list[dict[str, Any]]:
        wanted = [i for i in params.get("children", "").split(",") if i]
        with self.lock:
            found = [dict(self.comments[i]) for i in wanted if i in self.comments]
        return [_thing("t1", c | {"replies": ""}) for c in sorted(found, key=lambda c: c["created_utc"])]

    # ---- listings ----------------------------------------------------------------------------

    def _subreddit_items(self, subreddit: str, which: str) -> list[dict[str, Any]]:
        with self.lock:
            if which == "new":
                return [_thing("t3", s) for s in self.submissions.values() if s["subreddit"] == subreddit]
            return [_thing("t1", c | {"replies": ""}) for c in self.comments.values() if c["subreddit"] == subreddit]

    def _search(self, query: str) -> list[dict[str, Any]]:
        words = [word.lower() for word in query.split() if word.isalpha() and word not in ("OR", "AND")]
        with self.lock:
            found = [
                s for s in self.submissions.values() if any(w in (s["title"] + s["selftext"]).lower() for w in words)
            ]
        return [_thing("t3", s) for s in found]

    def _listing(self, things: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
        ordered = sorted(things, key=lambda t: int(t["data"]["id"], 36), reverse=True)[: self.listing_cap]
        start = 0
        if params.get("after"):
            names = [t["data"]["name"] for t in ordered]
            start = names.index(params["after"]) + 1 if params["after"] in names else len(ordered)
        size = min(100, int(params.get("limit") or 25))
        page = ordered[start : start + size]
        if self.edge_duplicates and start > 0:
            page = [ordered[start - 1], *ordered[start : start + size - 1]]
        last = ordered.index(page[-1]) if page else len(ordered)
        after = page[-1]["data"]["name"] if last + 1 < len(ordered) else None
        return {"kind": "Listing", "data": {"after": after, "dist": len(page), "children": page, "before": None}}


def _thing(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "data": data}
