"""The Bluesky collector against a fake XRPC server and a fake Jetstream on 127.0.0.1, through the atproto SDK."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import parse_config
from monitor.pipeline import CollectResult, Workspace, collect
from monitor.posts import Post
from monitor.sources.bluesky_payloads import is_quote, normalize_jetstream_event, normalize_search_page
from monitor.sources.query import compile_query
from monitor.store import Store
from tests.fake_bluesky import FakeBluesky, jwt, make_jetstream_events, make_post_views, rkey
from tests.fake_http import Fault, epoch_in
from tests.killed_store import KilledError, StoreKilledOnThirdPage
from tests.workspaces import event_rows, stored_cursor, workspace_on

DATA = Path(__file__).parent / "data"
EVENT = "instagram-tos-2012"
HANDLE = "monitor.bsky.social"
PASSWORD = "wxyz-secr-etap-pass"


def bluesky_config(tmp_path: Path, bsky: FakeBluesky, **settings: Any) -> dict[str, Any]:
    event = {
        "name": EVENT,
        "platform": "Instagram",
        "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
        "query": "instagram (terms OR delete OR deleting OR quit OR quitting)",
        "sources": ["bluesky"],
    }
    fast = {"api_base": bsky.url, "stream_url": bsky.jetstream.url, "backoff_base": 0.01, "max_rate_limit_wait": 5}
    return {
        "database": f"sqlite:///{tmp_path / 'data' / 'bsky.db'}",
        "events": [event],
        "sources": {"bluesky": {**fast, "retries": 3, **settings}},
    }


@pytest.fixture
def bsky(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBluesky]:
    monkeypatch.setenv("BLUESKY_HANDLE", HANDLE)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    with FakeBluesky(HANDLE, PASSWORD) as server:
        yield server


@pytest.fixture
def make_ws(tmp_path: Path, bsky: FakeBluesky) -> Iterator[Callable[..., Workspace]]:
    opened: list[Workspace] = []

    def make(store_class: type[Store] = Store, folder: Path = tmp_path, **settings: Any) -> Workspace:
        config = parse_config(bluesky_config(folder, bsky, **settings), folder)
        workspace = workspace_on(config, store_class)
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


def stored(ws: Workspace) -> list[dict[str, Any]]:
    return event_rows(ws.store, EVENT)


def stored_ids(ws: Workspace) -> list[str]:
    return sorted(row["post_id"] for row in stored(ws))


def uris(first: int, count: int) -> list[str]:
    return sorted(view["uri"] for view in make_post_views(count, first))


def cursor(ws: Workspace, kind: str) -> str | None:
    return stored_cursor(ws.store, EVENT, "bluesky", kind)


def only(result: CollectResult) -> Any:
    (outcome,) = result.outcomes
    return outcome


# ---- normalisers ---------------------------------------------------------------------------------


def test_search_page_normalises_the_recorded_payload() -> None:
    body = json.loads((DATA / "bluesky_search_page.json").read_text(encoding="utf-8"))
    collected = datetime(2024, 11, 20, 12, 0, tzinfo=UTC)
    items = list(normalize_search_page(body, collected))
    posts = [item for item in items if isinstance(item, Post)]
    rejected = [item for item in items if isinstance(item, str)]
    first, quote = posts
    assert (first.source, first.id, first.author, first.lang) == (
        "bluesky",
        "at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3lbcgmkx5sk2a",
        "alice.bsky.social",
        "en",
    )
    assert first.text == "Instagram can now sell my photos? Deleting my account."
    assert (first.likes, first.reposts, first.replies) == (12, 3, 4)
    assert first.created_at == datetime(2024, 11, 20, 9, 30, 12, 345000, tzinfo=UTC)
    assert first.url == "https://bsky.app/profile/alice.bsky.social/post/3lbcgmkx5sk2a"
    assert not is_quote(first.raw) and is_quote(quote.raw)
    assert (first.is_quote, quote.is_quote) == (False, True)
    assert quote.is_bot  # the author carries the self-label "bot"
    assert rejected == [
        "post 'at://did:plc:broken/app.bsky.feed.post/3lbroken': `record.createdAt` is missing or not a string"
    ]


def test_jetstream_event_normalises_to_a_post_with_the_did_as_author() -> None:
    (event,) = make_jetstream_events(1)
    post = normalize_jetstream_event(event, datetime.now(UTC))
    assert post is not None
    assert post.id == f"at://{event['did']}/app.bsky.feed.post/{rkey(0)}"
    assert post.url == f"https://bsky.app/profile/{event['did']}/post/{rkey(0)}"
    assert post.author == event["did"] and post.likes is None
    assert normalize_jetstream_event({**event, "kind": "identity"}, datetime.now(UTC)) is None
    delete = {**event, "commit": {**event["commit"], "operation": "delete"}}
    assert normalize_jetstream_event(delete, datetime.now(UTC)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Quitting Instagram over the new terms", True),
        ("#Instagram terms are awful", True),
        ("instagram is lovely today", False),
        ("new terms everywhere", False),
        ("INSTAGRAM: delete it", True),
        ("instagrammer terms", False),
    ],
)
def test_query_matcher(text: str, expected: bool) -> None:
    assert compile_query("instagram (terms OR delete OR quitting)")(text) is expected


def test_query_matcher_phrases_exclusions_and_operators() -> None:
    matches = compile_query('"quit instagram" OR #boycottinstagram -spam lang:en')
    assert matches("I quit Instagram today") and matches("#BoycottInstagram now")
    assert not matches("#boycottinstagram spam") and not matches("quit it, instagram")
    assert compile_query("")("anything")


# ---- search: pagination, cursors, sessions ---------------------------------------------------------


def test_full_pagination_logs_in_once_and_stores_every_post(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace]
) -> None:
    bsky.add_posts(make_post_views(250))
    ws = make_ws()
    outcome = only(collect(ws))
    # 251 read: the closing time page sees the oldest post again (skipped), then nothing older
    assert (outcome.status, outcome.read, outcome.new, outcome.cost_usd) == ("ok", 251, 250, 0.0)
    assert stored_ids(ws) == uris(0, 250)
    searches = bsky.searches()
    assert [s.params.get("cursor") for s in searches] == [None, "100", "200", None]  # then one time page, empty
    first = searches[0].params
    assert (first["q"], first["sort"], first["limit"], first["since"]) == (
        "instagram (terms OR delete OR deleting OR quit OR quitting)", "latest", "100", "2012-12-10T00:00:00.000Z",
    )  # fmt: skip
    assert searches[-1].params["until"] == "2012-12-17T12:00:00.001Z"  # below the oldest post seen
    assert bsky.logins() == 1
    assert cursor(ws, "since") == "2012-12-17T16:09:00.000Z"
    assert cursor(ws, "cursor") is None and cursor(ws, "until") is None
    row = next(r for r in stored(ws) if r["post_id"].endswith(rkey(7)))
    assert (row["author"], row["likes"], row["reposts"], row["replies"], row["lang"]) == (
        "user2.bsky.social", 0, 1, 1, "en",
    )  # fmt: skip
    assert row["url"] == f"https://bsky.app/profile/user2.bsky.social/post/{rkey(7)}"


def test_second_run_reuses_the_session_and_asks_since_the_newest_post(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace]
) -> None:
    bsky.add_posts(make_post_views(120))
    collect(make_ws())
    bsky.add_posts(make_post_views(30, first=120))
    before = len(bsky.searches())
    outcome = only(collect(make_ws()))
    assert outcome.new == 30
    assert bsky.searches()[before].params["since"] == "2012-12-17T13:59:00.000Z"
    assert bsky.logins() == 1  # the saved session, not a second login
    assert stored_ids(make_ws()) == uris(0, 150)


def test_session_near_expiry_is_refreshed_not_logged_in_again(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace]
) -> None:
    bsky.add_posts(make_post_views(5))
    ws = make_ws()
    collect(ws)
    saved = ws.store.get_session("bluesky", HANDLE)
    assert saved is not None
    # Time passes: the saved access token now expires in 5 minutes, inside the SDK's 15-minute margin.
    handle, did, _access, refresh, pds = saved.split(":::")
    soon = jwt({"scope": "com.atproto.appPass", "sub": did, "exp": int(time.time()) + 300})
    bsky.valid_access.add(soon)
    ws.store.set_session("bluesky", HANDLE, ":::".join([handle, did, soon, refresh, pds]))
    assert only(collect(make_ws())).status == "ok"
    assert (bsky.logins(), len(bsky.requests_to("refreshSession"))) == (1, 1)
    refreshed = ws.store.get_session("bluesky", HANDLE)
    assert refreshed is not None and soon not in refreshed and refresh not in refreshed  # the new session was kept


def test_revoked_session_falls_back_to_one_login(bsky: FakeBluesky, make_ws: Callable[..., Workspace]) -> None:
    bsky.add_posts(make_post_views(5))
    collect(make_ws())
    bsky.expire_refresh_tokens()  # e.g. the app password was rotated
    bsky.add_posts(make_post_views(5, first=5))
    outcome = only(collect(make_ws()))
    assert (outcome.status, outcome.new) == ("ok", 5)
    assert bsky.logins() == 2


def test_long_window_is_paged_by_time_past_the_result_cap(bsky: FakeBluesky, make_ws: Callable[..., Workspace]) -> None:
    bsky.result_cap = 120  # the AppView stops near 10,000 results; here after 120
    bsky.add_posts(make_post_views(300))
    ws = make_ws()
    outcome = only(collect(ws))
    assert outcome.new == 300 and stored_ids(ws) == uris(0, 300)
    untils = [s.params.get("until") for s in bsky.searches() if "cursor" not in s.params]
    assert untils == [None, "2012-12-17T15:00:00.001Z", "2012-12-17T13:01:00.001Z", "2012-12-17T12:00:00.001Z"]
    assert cursor(ws, "since") == "2012-12-17T16:59:00.000Z"


def test_run_killed_mid_way_then_rerun_equals_a_clean_run(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace], tmp_path: Path
) -> None:
    bsky.add_posts(make_post_views(100))
    clean, killed = make_ws(folder=tmp_path / "clean"), make_ws(StoreKilledOnThirdPage)
    collect(clean), collect(killed)
    bsky.add_posts(make_post_views(350, first=100))
    collect(clean)
    StoreKilledOnThirdPage.calls = 0
    with pytest.raises(KilledError):
        collect(killed)
    assert cursor(killed, "since") == "2012-12-17T13:39:00.000Z"  # unchanged until the run finishes
    assert cursor(killed, "cursor") == "200" and cursor(killed, "pending_since") == "2012-12-17T19:29:00.000Z"
    bsky.add_posts(make_post_views(10, first=450))  # arrives while the collector is down
    rerun = only(collect(make_ws()))
    assert rerun.status == "ok"
    assert stored_ids(make_ws()) == stored_ids(clean) == uris(0, 450)
    assert only(collect(make_ws())).new == 10


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        (
            Fault(
                429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, {"RateLimit-Reset": epoch_in(0)}
            ),
            1,
        ),
        (Fault(503), 2),
        (Fault(502), 1),
        (Fault(garbage=True), 1),
        (Fault(drop=True), 1),
    ],
    ids=["429", "503-twice", "502", "garbage", "dropped"],
)
def test_transient_failures_are_retried(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace], fault: Fault, times: int
) -> None:
    bsky.add_posts(make_post_views(150))
    bsky.fail(fault, times=times, after=1, path="searchPosts")
    ws = make_ws()
    outcome = only(collect(ws))
    assert (outcome.status, outcome.new) == ("ok", 150)
    assert stored_ids(ws) == uris(0, 150)


def test_rate_limit_reset_too_far_ends_the_run_at_the_last_page(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace]
) -> None:
    bsky.add_posts(make_post_views(150))
    limited = Fault(429, {"error": "RateLimitExceeded"}, {"RateLimit-Reset": epoch_in(3600)})
    bsky.fail(limited, after=1, path="searchPosts")
    ws = make_ws()
    outcome = only(collect(ws))
    assert outcome.status == "failed" and "longer than max_rate_limit_wait" in outcome.message
    assert cursor(ws, "cursor") == "100" and len(stored_ids(ws)) == 100


def test_malformed_post_is_skipped_and_logged(bsky: FakeBluesky, make_ws: Callable[..., Workspace]) -> None:
    views = make_post_views(5)
    del views[2]["record"]["text"]
    bsky.add_posts(views)
    outcome = only(collect(make_ws()))
    assert (outcome.status, outcome.new, outcome.malformed) == ("ok", 4, 1)


# ---- credentials --------------------------------------------------------------------------------


def run_cli(tmp_path: Path, document: dict[str, Any], *args: str) -> Result:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(path), *args], catch_exceptions=False)


def test_missing_credentials_skip_bluesky_with_a_clear_line(
    bsky: FakeBluesky, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BLUESKY_APP_PASSWORD")
    result = run_cli(tmp_path, bluesky_config(tmp_path, bsky), "collect")
    assert result.exit_code == 0
    assert f"{EVENT} / bluesky: skipped — Bluesky source skipped: $BLUESKY_APP_PASSWORD not set" in result.output
    assert bsky.served == []


def test_wrong_password_fails_without_showing_it(
    bsky: FakeBluesky, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "nope-nope-nope-nope")
    result = run_cli(tmp_path, bluesky_config(tmp_path, bsky), "collect")
    assert result.exit_code == 1
    assert "Bluesky refused the login of $BLUESKY_HANDLE with $BLUESKY_APP_PASSWORD (HTTP 401" in result.output
    assert "nope-nope-nope-nope" not in result.output


def test_password_and_tokens_never_in_logs_or_status(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    for name in ("", "httpx", "httpcore", "atproto_client"):
        caplog.set_level(logging.DEBUG, logger=name)
    bsky.add_posts(make_post_views(150))
    ws = make_ws()
    collect(ws)
    collect(make_ws())
    session = ws.store.get_session("bluesky", HANDLE)
    assert session is not None
    secrets = [PASSWORD, session, *session.split(":::")[2:4]]
    assert "searchPosts" in caplog.text  # httpx's request lines were captured
    assert not any(secret in caplog.text for secret in secrets)
    status = run_cli(tmp_path, bluesky_config(tmp_path, bsky), "status")
    assert not any(secret in status.output for secret in secrets)


# ---- quote posts ------------------------------------------------------------------------------

QUOTED = {"uri": "at://did:plc:instagram/app.bsky.feed.post/3kquoted", "cid": "bafyreiquoted"}


def test_quote_posts_from_search_are_stored_flagged(bsky: FakeBluesky, make_ws: Callable[..., Workspace]) -> None:
    plain, quote, with_media, with_images = make_post_views(4)
    quote["record"]["embed"] = {"$type": "app.bsky.embed.record", "record": QUOTED}
    quote["embed"] = {"$type": "app.bsky.embed.record#view", "record": {"$type": "app.bsky.embed.record#viewRecord"}}
    media = {"$type": "app.bsky.embed.images", "images": []}
    with_media["record"]["embed"] = {
        "$type": "app.bsky.embed.recordWithMedia",
        "record": {"record": QUOTED},
        "media": media,
    }
    with_images["record"]["embed"] = media  # pictures, no quoted post
    bsky.add_posts([plain, quote, with_media, with_images])
    ws = make_ws()
    collect(ws)
    flags = {row["post_id"]: row["is_quote"] for row in stored(ws)}
    assert flags == {plain["uri"]: False, quote["uri"]: True, with_media["uri"]: True, with_images["uri"]: False}


def test_quote_posts_from_the_stream_are_stored_flagged(bsky: FakeBluesky, make_ws: Callable[..., Workspace]) -> None:
    events = make_jetstream_events(6)  # events 0 and 3 are about instagram
    events[3]["commit"]["record"]["embed"] = {"$type": "app.bsky.embed.record", "record": QUOTED}
    bsky.jetstream.events = list(events)
    ws = make_ws(mode="stream", stream_max_events=6, stream_page_events=6)
    collect(ws)
    flags = {row["post_id"].rsplit("/", 1)[1]: row["is_quote"] for row in stored(ws)}
    assert flags == {rkey(0): False, rkey(3): True}


# ---- stream mode --------------------------------------------------------------------------------


def test_stream_filters_by_the_query_and_resumes_from_time_us(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace]
) -> None:
    bsky.jetstream.events = make_jetstream_events(30)
    ws = make_ws(mode="stream", stream_max_events=30, stream_page_events=10)
    outcome = only(collect(ws))
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 30, 10)  # every third is about instagram
    assert all("instagram" in row["text"] for row in stored(ws))
    assert cursor(ws, "time_us") == str(bsky.jetstream.events[29]["time_us"])  # type: ignore[index]
    assert bsky.jetstream.connections[0] == {"wantedCollections": "app.bsky.feed.post"}
    assert bsky.served == []  # no login: Jetstream is public

    bsky.jetstream.events += make_jetstream_events(9, first=30)
    second = only(collect(make_ws(mode="stream", stream_max_events=10, stream_page_events=10)))
    assert bsky.jetstream.connections[1]["cursor"] == str(bsky.jetstream.events[29]["time_us"])  # type: ignore[index]
    assert cursor(ws, "time_us") == str(bsky.jetstream.events[38]["time_us"])  # type: ignore[index]
    assert second.new == 3 and len(stored_ids(ws)) == 13  # the replayed last event is not stored twice


def test_stream_dropped_mid_way_reconnects_from_the_last_event(
    bsky: FakeBluesky, make_ws: Callable[..., Workspace]
) -> None:
    bsky.jetstream.events = make_jetstream_events(30)
    bsky.jetstream.drop_after = 12
    ws = make_ws(mode="stream", stream_max_events=31, stream_page_events=5)
    outcome = only(collect(ws))
    assert outcome.status == "ok"
    assert len(bsky.jetstream.connections) == 2
    assert bsky.jetstream.connections[1]["cursor"] == str(bsky.jetstream.events[11]["time_us"])  # type: ignore[index]
    assert len(stored_ids(ws)) == 10


def test_stream_skips_garbage_events(bsky: FakeBluesky, make_ws: Callable[..., Workspace]) -> None:
    nested = "[" * 100_000  # valid as far as it goes, and too deep for json to read
    garbage = ["not json", nested]
    bsky.jetstream.events = [*make_jetstream_events(3), *garbage, *make_jetstream_events(3, first=3)]
    outcome = only(collect(make_ws(mode="stream", stream_max_events=8)))
    assert (outcome.status, outcome.new, outcome.malformed) == ("ok", 2, 2)
