"""The X collector against a fake X API on 127.0.0.1: pagination, cursors, resume, failures, money, secrecy."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import Config, parse_config
from monitor.errors import SourceError
from monitor.pipeline import CollectResult, Workspace, collect, spend_this_month
from monitor.posts import Post
from monitor.sources import retry
from monitor.sources.x_payloads import normalize_counts, normalize_page, normalize_page_items
from monitor.store import Store, open_store
from tests.fake_x_api import BASE_ID, INVALID_REQUEST, FakeXApi, Fault, make_tweets
from tests.killed_store import KilledError, StoreKilledOnThirdPage
from tests.workspaces import stored_cursor

DATA = Path(__file__).parent / "data"
TOKEN = "AAAAAAAAAAAAAAAAAAAAAFakeBearer%2Fsecret%3D0123456789"
EVENT = "instagram-tos-2012"
OTHER = "instagram-other"


def x_config(tmp_path: Path, api: FakeXApi, **x_settings: Any) -> dict[str, Any]:
    """Two events collected from X through the fake, with waits short enough for tests."""
    event = {
        "name": EVENT,
        "platform": "Instagram",
        "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
        "query": "instagram terms",
        "sources": ["x"],
        "start": "2012-12-10",
        "end": "2013-01-23",
    }
    settings = {"api_base": api.url, "backoff_base": 0.01, "max_rate_limit_wait": 0.3, "full_archive_interval": 0.01}
    return {
        "database": f"sqlite:///{tmp_path / 'data' / 'x.db'}",
        "events": [event, {**event, "name": OTHER, "query": "instagram privacy"}],
        "sources": {"x": {**settings, "retries": 3, **x_settings}},
    }


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeXApi]:
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    with FakeXApi(token=TOKEN) as server:
        yield server


@pytest.fixture
def make_ws(tmp_path: Path, api: FakeXApi) -> Iterator[Callable[..., Workspace]]:
    """Workspaces on one database (optionally with another Store class), closed after the test."""
    opened: list[Workspace] = []

    def make(store_class: type[Store] = Store, folder: Path = tmp_path, **x_settings: Any) -> Workspace:
        config = parse_config(x_config(folder, api, **x_settings), folder)
        engine = open_store(config.database_url()).engine
        workspace = Workspace(config, store_class(engine))
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


def stored_ids(ws: Workspace, event: str = EVENT) -> list[str]:
    return sorted(row["post_id"] for chunk in ws.store.iter_event_posts(event) for row in chunk)


def cursor(ws: Workspace, kind: str, event: str = EVENT) -> str | None:
    return stored_cursor(ws.store, event, "x", kind)


def ids(first: int, count: int) -> list[str]:
    return sorted(str(BASE_ID + n) for n in range(first, first + count))


def only(result: CollectResult, event: str = EVENT) -> Any:
    return next(outcome for outcome in result.outcomes if outcome.event == event)


# ---- normalisers: golden tests on a recorded v2 page ---------------------------------------------


def test_normalize_page_matches_the_recorded_payload() -> None:
    payload = json.loads((DATA / "x_search_recent_page.json").read_text(encoding="utf-8"))
    expected = json.loads((DATA / "x_search_recent_page.expected.json").read_text(encoding="utf-8"))
    collected_at = datetime(2012, 12, 18, 10, 0, tzinfo=UTC)
    results = list(normalize_page_items(payload, collected_at))
    posts = [r for r in results if isinstance(r, Post)]
    assert [_comparable(p) for p in posts] == expected["posts"]
    assert [r for r in results if isinstance(r, str)] == expected["rejected"]
    assert all(p.collected_at == collected_at for p in posts)
    assert json.loads(posts[0].raw or "")["id"] == "281405942321532929"  # provenance: the tweet as received
    assert normalize_page(payload, collected_at) == (posts, 2)


def _comparable(post: Post) -> dict[str, Any]:
    record = asdict(post)
    record.pop("raw"), record.pop("collected_at")
    record["created_at"] = post.created_at.isoformat()
    return record


def test_twarc_flattened_tweet_uses_its_embedded_author_and_original() -> None:
    tweet = {
        "id": "5",
        "text": "RT @a: cut…",
        "created_at": "2012-12-18T09:00:00.000Z",
        "author": {"id": "9", "username": "bob", "public_metrics": {"followers_count": 3}},
        "author_id": "9",
        "referenced_tweets": [{"type": "retweeted", "id": "4", "tweet": {"id": "4", "text": "the whole text"}}],
    }
    (post,) = normalize_page_items(tweet, datetime.now(UTC))
    assert isinstance(post, Post)
    assert (post.author, post.followers, post.text, post.is_repost, post.repost_of) == (
        "bob", 3, "the whole text", True, "4",
    )  # fmt: skip


def test_counts_fill_missing_hours_with_zero() -> None:
    payload = {
        "data": [
            {"start": "2012-12-18T09:00:00.000Z", "end": "2012-12-18T10:00:00.000Z", "tweet_count": 4},
            {"start": "2012-12-18T12:00:00.000Z", "end": "2012-12-18T13:00:00.000Z", "tweet_count": 1},
            {"start": "broken"},
        ]
    }
    hours = [(start.hour, count) for start, count in normalize_counts(payload)]
    assert hours == [(9, 4), (10, 0), (11, 0), (12, 1)]
    span = (datetime(2012, 12, 18, 7, 30, tzinfo=UTC), datetime(2012, 12, 18, 14, 10, tzinfo=UTC))
    hours = [(start.hour, count) for start, count in normalize_counts(payload, *span)]
    assert hours == [(7, 0), (8, 0), (9, 4), (10, 0), (11, 0), (12, 1), (13, 0), (14, 0)]
    assert [count for _start, count in normalize_counts({"meta": {}}, *span)] == [0] * 8


# ---- pagination and cursors --------------------------------------------------------------------


def test_full_pagination_stores_every_post_once(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    api.add_tweets(make_tweets(250))
    ws = make_ws()
    result = collect(ws, EVENT)
    outcome = only(result)
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 250, 250)
    assert outcome.cost_usd == pytest.approx(250 * 0.005)
    assert stored_ids(ws) == ids(0, 250)
    requests = api.search_requests()
    assert [r.params.get("next_token") for r in requests] == [None, f"next-{BASE_ID + 150}", f"next-{BASE_ID + 50}"]
    assert requests[0].params["max_results"] == "100"
    assert (
        requests[0].params["tweet.fields"]
        == "created_at,lang,public_metrics,author_id,referenced_tweets,conversation_id"
    )
    assert requests[0].params["user.fields"] == "username,public_metrics"
    assert "author_id" in requests[0].params["expansions"].split(",")
    assert cursor(ws, "since_id") == str(BASE_ID + 249)
    assert cursor(ws, "next_token") is None and cursor(ws, "pending_since_id") is None
    run = ws.store.recent_runs(1)[0]
    assert (run.verb, run.status, run.posts_read, run.posts_new) == ("collect", "ok", 250, 250)
    assert run.cost_usd == pytest.approx(1.25)


def test_second_run_asks_with_since_id_and_stores_only_new_posts(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    api.add_tweets(make_tweets(120))
    ws = make_ws()
    collect(ws, EVENT)
    api.add_tweets(make_tweets(30, first=120))
    before = len(api.search_requests())
    outcome = only(collect(ws, EVENT))
    assert (outcome.read, outcome.new) == (30, 30)
    (request,) = api.search_requests()[before:]
    assert request.params["since_id"] == str(BASE_ID + 119)
    assert stored_ids(ws) == ids(0, 150)
    assert cursor(ws, "since_id") == str(BASE_ID + 149)
    quiet = only(collect(ws, EVENT))  # nothing new: an empty page, not a malformed one
    assert (quiet.status, quiet.read, quiet.new, quiet.malformed, quiet.message) == ("ok", 0, 0, 0, "")
    assert cursor(ws, "since_id") == str(BASE_ID + 149)


def test_run_killed_after_page_two_then_rerun_equals_a_clean_run(
    api: FakeXApi, make_ws: Callable[..., Workspace], tmp_path: Path
) -> None:
    api.add_tweets(make_tweets(100))
    clean = make_ws(folder=tmp_path / "clean")
    killed = make_ws(StoreKilledOnThirdPage)
    collect(clean, EVENT), collect(killed, EVENT)  # both start from the same since_id
    api.add_tweets(make_tweets(350, first=100))  # 4 pages of new posts
    collect(clean, EVENT)
    StoreKilledOnThirdPage.calls = 0
    with pytest.raises(KilledError):
        collect(killed, EVENT)
    assert len(stored_ids(killed)) == 100 + 200
    assert cursor(killed, "since_id") == str(BASE_ID + 99)  # unchanged until the whole run of pages is stored
    assert cursor(killed, "next_token") == f"next-{BASE_ID + 250}"
    assert cursor(killed, "pending_since_id") == str(BASE_ID + 449)
    assert killed.store.recent_runs(1)[0].status == "failed"
    at_kill = StoreKilledOnThirdPage.run_at_kill  # what the budget sees even if nothing could record the end
    assert (at_kill.status, at_kill.posts_read, at_kill.posts_new) == ("running", 200, 200)
    assert at_kill.cost_usd == pytest.approx(200 * 0.005)

    api.add_tweets(make_tweets(10, first=450))  # arrives while the collector is down
    resumed_from = len(api.search_requests())
    rerun = only(collect(make_ws(), EVENT))
    first = api.search_requests()[resumed_from]
    assert (first.params["since_id"], first.params["next_token"]) == (str(BASE_ID + 99), f"next-{BASE_ID + 250}")
    assert rerun.new == 150
    assert stored_ids(make_ws()) == stored_ids(clean) == ids(0, 450)  # none missing, none twice
    assert cursor(make_ws(), "since_id") == str(BASE_ID + 449)
    assert only(collect(make_ws(), EVENT)).new == 10  # the posts that came during the outage are next


def test_dropped_connection_gives_up_at_the_last_good_page_and_the_rerun_completes(
    api: FakeXApi, make_ws: Callable[..., Workspace], tmp_path: Path
) -> None:
    api.add_tweets(make_tweets(450))
    api.fail(Fault(drop=True), times=4, after=2)  # page 3 and its 3 retries
    ws = make_ws()
    outcome = only(collect(ws, EVENT))
    assert outcome.status == "failed"
    assert "gave up after 4 attempts" in outcome.message and "connection" in outcome.message
    assert (outcome.read, len(stored_ids(ws))) == (200, 200)
    assert cursor(ws, "next_token") == f"next-{BASE_ID + 250}" and cursor(ws, "since_id") is None
    api.clear_faults()
    assert only(collect(ws, EVENT)).new == 250
    clean = make_ws(folder=tmp_path / "clean")
    collect(clean, EVENT)
    assert stored_ids(ws) == stored_ids(clean) == ids(0, 450)
    assert cursor(ws, "since_id") == cursor(clean, "since_id") == str(BASE_ID + 449)


def test_malformed_tweet_is_skipped_and_the_rest_stored(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    tweets = make_tweets(5)
    del tweets[2]["created_at"]
    api.add_tweets(tweets)
    outcome = only(collect(make_ws(), EVENT))
    assert (outcome.status, outcome.read, outcome.new, outcome.malformed) == ("ok", 5, 4, 1)
    assert "1 malformed posts skipped" in outcome.message


def test_retweet_is_stored_flagged_with_the_original_text(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    (tweet,) = make_tweets(1)
    tweet |= {"text": "RT @jane: Instagram can sell your…", "referenced_tweets": [{"type": "retweeted", "id": "77"}]}
    api.extra_tweets["77"] = {"id": "77", "text": "Instagram can sell your photos now. Deleting my account."}
    api.add_tweets([tweet])
    ws = make_ws()
    collect(ws, EVENT)
    (row,) = [row for chunk in ws.store.iter_event_posts(EVENT) for row in chunk]
    assert (row["is_repost"], row["repost_of"]) == (True, "77")
    assert row["text"] == "Instagram can sell your photos now. Deleting my account."


def test_quote_tweet_is_stored_flagged_as_a_quote_with_its_own_text(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    plain, quote, reply = make_tweets(3)
    quote |= {"text": "This is why I'm quitting instagram", "referenced_tweets": [{"type": "quoted", "id": "77"}]}
    reply["referenced_tweets"] = [{"type": "replied_to", "id": "78"}]
    api.add_tweets([plain, quote, reply])
    ws = make_ws()
    collect(ws, EVENT)
    rows = {row["post_id"]: row for chunk in ws.store.iter_event_posts(EVENT) for row in chunk}
    assert {post_id: row["is_quote"] for post_id, row in rows.items()} == {
        plain["id"]: False, quote["id"]: True, reply["id"]: False,
    }  # fmt: skip
    assert (rows[quote["id"]]["text"], rows[quote["id"]]["is_repost"]) == ("This is why I'm quitting instagram", False)


# ---- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "times"),
    [(Fault.rate_limited(reset_in=0), 1), (Fault(status=503), 2), (Fault(garbage=True), 1)],
    ids=["429-then-success", "503-twice-then-success", "garbage-then-success"],
)
def test_transient_failures_are_retried(
    api: FakeXApi, make_ws: Callable[..., Workspace], fault: Fault, times: int
) -> None:
    api.add_tweets(make_tweets(150))
    api.fail(fault, times=times, after=1)
    ws = make_ws()
    outcome = only(collect(ws, EVENT))
    assert (outcome.status, outcome.new) == ("ok", 150)
    assert len(api.search_requests()) == 2 + times
    assert stored_ids(ws) == ids(0, 150)


def test_rate_limit_reset_beyond_the_ceiling_ends_the_run_without_waiting(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    api.add_tweets(make_tweets(150))
    api.fail(Fault.rate_limited(reset_in=3600), after=1)
    ws = make_ws(max_rate_limit_wait=60)
    outcome = only(collect(ws, EVENT))
    assert outcome.status == "failed" and "longer than max_rate_limit_wait" in outcome.message
    assert cursor(ws, "next_token") == f"next-{BASE_ID + 50}"


def test_usage_cap_stops_with_one_clear_line_and_no_retry(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    api.add_tweets(make_tweets(10))
    api.fail(Fault.usage_cap(), times=5)
    outcome = only(collect(make_ws(), EVENT))
    assert outcome.status == "failed"
    assert outcome.message.startswith("X usage cap reached (UsageCapExceeded)")
    assert len(api.search_requests()) == 1


@pytest.mark.parametrize("counts", [False, True])
def test_usage_cap_skips_x_for_the_rest_of_the_run(
    api: FakeXApi, make_ws: Callable[..., Workspace], counts: bool
) -> None:
    api.add_tweets(make_tweets(10))
    api.fail(Fault.usage_cap(), times=5)
    first, second = collect(make_ws(), counts=counts).outcomes
    assert (first.event, first.status) == (EVENT, "failed")
    assert first.message.startswith("X usage cap reached (UsageCapExceeded)")
    assert (second.event, second.status) == (OTHER, "skipped")
    assert second.message == "x source skipped: its usage cap was reached earlier in this run; the next run tries again"
    assert len(api.served) == 1  # the second event asked X nothing


def run_cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_rejected_token_fails_that_event_exit_1_and_other_events_still_collected(api: FakeXApi, tmp_path: Path) -> None:
    api.add_tweets(make_tweets(30))
    api.fail(Fault(status=401, body={"title": "Unauthorized", "status": 401}))
    result = run_cli(write(tmp_path, x_config(tmp_path, api)), "collect")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{EVENT} / x: failed")
    assert "X rejected the bearer token in $X_BEARER_TOKEN (HTTP 401)" in lines[0]
    assert lines[1].startswith(f"{OTHER} / x: ok, read 30, new 30")
    assert TOKEN not in result.output


def test_wrong_token_fails_every_event_without_showing_it(
    api: FakeXApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X_BEARER_TOKEN", "wrong-token-xyz")
    result = run_cli(write(tmp_path, x_config(tmp_path, api)), "collect", "--event", EVENT)
    assert result.exit_code == 1
    assert "X rejected the bearer token in $X_BEARER_TOKEN" in result.output
    assert "wrong-token-xyz" not in result.output


def test_missing_token_skips_x_with_the_variable_name(
    api: FakeXApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("X_BEARER_TOKEN")
    result = run_cli(write(tmp_path, x_config(tmp_path, api)), "collect")
    assert result.exit_code == 0
    assert f"{EVENT} / x: skipped — X source skipped: $X_BEARER_TOKEN is not set" in result.output
    assert f"{OTHER} / x: skipped" in result.output
    assert api.served == []


def test_unknown_source_option_is_a_usage_error(api: FakeXApi, tmp_path: Path) -> None:
    result = run_cli(write(tmp_path, x_config(tmp_path, api)), "collect", "--source", "bluesky")
    assert result.exit_code == 2
    assert "--source 'bluesky'" in result.output


def test_a_gateway_that_echoes_the_authorization_header_never_shows_the_token(api: FakeXApi, tmp_path: Path) -> None:
    """The error body quotes `Authorization: Bearer <token>`: not on stdout, in the run log, in status or the logs."""
    api.add_tweets(make_tweets(30))
    api.fail(Fault(status=400, echo_authorization=True))
    config = write(tmp_path, x_config(tmp_path, api))
    result = run_cli(config, "--log-level", "DEBUG", "collect", "--event", EVENT)
    assert result.exit_code == 1
    assert "gateway refused the request (headers: Authorization: Bearer ***)" in result.stdout
    assert TOKEN not in result.output
    status = run_cli(config, "status")
    assert "Authorization: Bearer ***" in status.output and TOKEN not in status.output
    store = open_store(parse_config(x_config(tmp_path, api), tmp_path).database_url())
    messages = [run.message or "" for run in store.recent_runs(10)]
    store.close()
    assert any("Bearer ***" in message for message in messages)
    assert all(TOKEN not in message for message in messages)


def test_a_logged_traceback_never_shows_a_secret(tmp_path: Path) -> None:
    """The daemon logs a failed job's traceback at DEBUG: the exception's text is masked like the message."""
    from monitor.cli import setup_logging
    from monitor.sources.redaction import redact_in_logs

    redact_in_logs(TOKEN)
    log_file = tmp_path / "daemon.log"
    setup_logging("DEBUG", str(log_file))
    try:
        raise SourceError(f"gateway said: Authorization: Bearer {TOKEN}")
    except SourceError:
        logging.getLogger("monitor.daemon").debug("job collect failed", exc_info=True)
    text = log_file.read_text(encoding="utf-8")
    assert "SourceError: gateway said: Authorization: Bearer ***" in text and TOKEN not in text


def test_any_secret_variable_the_config_names_is_masked_in_every_message(
    api: FakeXApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `*_env` variable that is set is a secret: even a message quoting it by accident shows ***."""
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "mastodon-token-0123456789")
    result = run_cli(write(tmp_path, x_config(tmp_path, api)), "collect", "--event", "mastodon-token-0123456789")
    assert result.exit_code == 2
    assert result.output == f"error: --event: no event named '***' in the config (events: {EVENT}, {OTHER})\n"


def test_token_never_appears_in_logs_at_debug(
    api: FakeXApi, make_ws: Callable[..., Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("", "tweepy", "urllib3"):  # the CLI tests' setup_logging may have quieted the libraries
        caplog.set_level(logging.DEBUG, logger=name)
    api.add_tweets(make_tweets(150))
    api.fail(Fault.rate_limited(), after=1)
    api.fail(Fault(status=401), after=3)
    ws = make_ws()
    collect(ws)
    assert "Making API request" in caplog.text  # tweepy's header dump was captured…
    assert "Bearer ***" in caplog.text  # …with the token replaced
    assert TOKEN not in caplog.text
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert all(TOKEN not in (run.message or "") for run in ws.store.recent_runs(10))


# ---- money --------------------------------------------------------------------------------------


def test_max_posts_per_run_stops_the_run_and_the_next_run_resumes(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    api.add_tweets(make_tweets(300))
    ws = make_ws(max_posts_per_run=150)
    outcome = only(collect(ws, EVENT))
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 150, 150)
    assert "read limit of 150" in outcome.message
    assert [r.params["max_results"] for r in api.search_requests()] == ["100", "50"]
    assert cursor(ws, "next_token") == f"next-{BASE_ID + 150}"
    assert only(collect(ws, EVENT)).new == 150
    assert stored_ids(ws) == ids(0, 300)
    assert cursor(ws, "since_id") == str(BASE_ID + 299)


def test_monthly_budget_spent_skips_the_run(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    api.add_tweets(make_tweets(300))
    ws = make_ws(monthly_post_budget=120)
    first = only(collect(ws, EVENT))
    assert first.read == 120  # the budget left, not the per-run limit, sized the pages
    assert spend_this_month(ws) == (120, pytest.approx(0.6))
    second = collect(ws)
    assert [o.status for o in second.outcomes] == ["skipped", "skipped"]
    assert "monthly budget of 120 posts spent" in second.outcomes[0].message
    assert len(api.search_requests()) == 2


# ---- counts, full archive, stopping --------------------------------------------------------------


def test_counts_recent_stores_every_hour_of_the_last_7_days_with_zeros(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    api.add_tweets(make_tweets(2, start=hour - timedelta(hours=100) + timedelta(minutes=10)))
    api.add_tweets(make_tweets(1, first=10, start=hour - timedelta(hours=30) + timedelta(minutes=5)))
    ws = make_ws()
    outcome = only(collect(ws, EVENT, counts=True))
    stored = {start: n for _source, start, n in ws.store.counts(EVENT)}
    hours = sorted(stored)
    # 7 days of hours up to the current one; a run in an hour's last minute leaves out the oldest hour,
    # which X may already refuse as more than 7 days ago.
    assert len(hours) == 168 or (now.minute == 59 and len(hours) == 167)
    assert hours[-1] in (hour, datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    assert hours == [hours[0] + timedelta(hours=n) for n in range(len(hours))]
    assert {start: n for start, n in stored.items() if n} == {
        hour - timedelta(hours=100): 2,
        hour - timedelta(hours=30): 1,
    }
    assert (stored[hours[0]], stored[hours[-1]]) == (0, 0)  # leading and trailing zeros stored too
    assert (outcome.status, outcome.kind, outcome.hours, outcome.counted) == ("ok", "counts", len(hours), 3)
    assert outcome.cost_usd == pytest.approx(0.01)
    request = next(r for r in api.served if r.path == "/2/tweets/counts/recent")
    assert request.params["start_time"] == hours[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    run = ws.store.recent_runs(1)[0]
    assert (run.verb, run.posts_read) == ("counts", 0)


WINDOW_START = datetime(2012, 12, 10, tzinfo=UTC)  # the test event's start and end: 44 days, 1056 hours
WINDOW_HOURS = 44 * 24
DAILY_POSTS = {datetime(2012, 12, 17 + n, 12, tzinfo=UTC): 1 for n in range(6)}  # make_tweets(6, every=1 day)


def stored_counts(ws: Workspace) -> dict[datetime, int]:
    return {start: n for _source, start, n in ws.store.counts(EVENT)}


def test_counts_all_follows_next_token_over_the_event_window(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    api.counts_page_days = 2
    api.add_tweets(make_tweets(6, every=timedelta(days=1)))  # one a day from 2012-12-17 12:00
    ws = make_ws(endpoint="all")
    outcome = only(collect(ws, EVENT, counts=True))
    count_requests = [r for r in api.served if r.path == "/2/tweets/counts/all"]
    assert count_requests[0].params["start_time"] == "2012-12-10T00:00:00Z"
    assert count_requests[0].params["end_time"] == "2013-01-23T00:00:00Z"
    assert count_requests[0].params["granularity"] == "hour"
    assert len(count_requests) == 22  # 44 days in 2-day pages
    assert outcome.counted == 6 and outcome.cost_usd == pytest.approx(0.22)
    stored = stored_counts(ws)
    assert sorted(stored) == [WINDOW_START + timedelta(hours=n) for n in range(WINDOW_HOURS)]
    assert {start: n for start, n in stored.items() if n} == DAILY_POSTS
    assert outcome.hours == WINDOW_HOURS
    assert cursor(ws, "counts_next_token") is None and cursor(ws, "counts_filled_from") is None


def test_counts_with_no_posts_store_a_zero_for_every_hour_of_the_window(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    ws = make_ws(endpoint="all")
    outcome = only(collect(ws, EVENT, counts=True))
    assert (outcome.status, outcome.hours, outcome.counted) == ("ok", WINDOW_HOURS, 0)
    stored = stored_counts(ws)
    assert sorted(stored) == [WINDOW_START + timedelta(hours=n) for n in range(WINDOW_HOURS)]
    assert set(stored.values()) == {0}


def test_counts_run_that_fails_midway_stores_only_covered_hours_and_the_rerun_completes(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    api.counts_page_days = 2  # newest first: page 16 covers Dec 22-24, page 17 Dec 20-22, page 18 Dec 18-20
    api.add_tweets(make_tweets(6, every=timedelta(days=1)))
    api.fail(Fault(status=500), times=4, after=17)  # page 18 fails every attempt
    ws = make_ws(endpoint="all")
    assert only(collect(ws, EVENT, counts=True)).status == "failed"
    stored = stored_counts(ws)
    covered_from = datetime(2012, 12, 20, 12, tzinfo=UTC)  # the oldest hour listed so far: no zeros below it
    assert sorted(stored) == [covered_from + timedelta(hours=n) for n in range(804)]
    assert sum(stored.values()) == 3
    assert cursor(ws, "counts_next_token") == "counts-2012-12-20T00:00:00.000Z"
    assert cursor(ws, "counts_filled_from") == "2012-12-20T12:00:00+00:00"
    api.clear_faults()
    assert only(collect(ws, EVENT, counts=True)).status == "ok"
    assert len([r for r in api.served if r.path == "/2/tweets/counts/all"]) == 17 + 4 + 5
    stored = stored_counts(ws)
    assert sorted(stored) == [WINDOW_START + timedelta(hours=n) for n in range(WINDOW_HOURS)]
    assert {start: n for start, n in stored.items() if n} == DAILY_POSTS


def test_full_archive_backfill_uses_the_event_window_and_resumes_its_token(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    inside = make_tweets(250)
    before = make_tweets(5, first=1000, start=datetime(2012, 12, 1, tzinfo=UTC))
    api.add_tweets(inside + before)
    api.fail(Fault(status=500), times=4, after=2)
    ws = make_ws(endpoint="all")
    assert only(collect(ws, EVENT)).status == "failed"
    assert cursor(ws, "next_token") == f"next-{BASE_ID + 50}"
    api.clear_faults()
    assert only(collect(ws, EVENT)).new == 50
    request = api.search_requests()[-1]
    assert (request.path, request.params["next_token"]) == ("/2/tweets/search/all", f"next-{BASE_ID + 50}")
    assert (request.params["start_time"], request.params["end_time"]) == (
        "2012-12-10T00:00:00Z",
        "2013-01-23T00:00:00Z",
    )
    assert stored_ids(ws) == ids(0, 250)  # the posts before the window were never asked for


def test_full_archive_second_run_moves_start_time_up_instead_of_sending_since_id(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    api.add_tweets(make_tweets(150, snowflakes=True))  # one a minute from 2012-12-17 12:00
    ws = make_ws(endpoint="all")
    assert only(collect(ws, EVENT)).new == 150
    newest = api.tweets[-1]
    assert cursor(ws, "since_id") == newest["id"]
    api.add_tweets(make_tweets(20, first=150, snowflakes=True))
    before = len(api.search_requests())

    outcome = only(collect(ws, EVENT))
    (request,) = api.search_requests()[before:]
    assert "since_id" not in request.params  # X refuses since_id with start_time or end_time
    assert request.params["start_time"] == newest["created_at"].replace(".000Z", "Z") == "2012-12-17T14:29:00Z"
    assert request.params["end_time"] == "2013-01-23T00:00:00Z"
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 21, 20)  # the newest post's second is read again
    assert stored_ids(ws) == sorted(tweet["id"] for tweet in api.tweets)
    assert cursor(ws, "since_id") == api.tweets[-1]["id"]


def test_expired_next_token_restarts_the_run_from_its_since_id(
    api: FakeXApi, make_ws: Callable[..., Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    api.add_tweets(make_tweets(120))
    collect(make_ws(), EVENT)
    api.add_tweets(make_tweets(350, first=120))
    assert only(collect(make_ws(max_posts_per_run=200), EVENT)).new == 200  # stops with a next_token stored
    assert cursor(make_ws(), "next_token") == f"next-{BASE_ID + 270}"
    api.expire_next_tokens()
    before = len(api.search_requests())

    outcome = only(collect(make_ws(), EVENT))
    refused, restart, *_ = api.search_requests()[before:]
    assert refused.params["next_token"] == f"next-{BASE_ID + 270}"
    assert "next_token" not in restart.params and restart.params["since_id"] == str(BASE_ID + 119)
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 350, 150)
    assert stored_ids(make_ws()) == ids(0, 470)  # none missing, none twice
    assert cursor(make_ws(), "since_id") == str(BASE_ID + 469) and cursor(make_ws(), "next_token") is None
    assert "no longer accepts the stored next_token" in caplog.text


def test_since_id_older_than_recent_searchs_seven_days_reads_the_last_seven_days(
    api: FakeXApi, make_ws: Callable[..., Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api.add_tweets(make_tweets(10, start=now - timedelta(days=10), snowflakes=True))
    collect(make_ws(), EVENT)  # ten days ago, when these were recent
    stale = cursor(make_ws(), "since_id")
    lost = make_tweets(5, first=10, start=now - timedelta(days=8), snowflakes=True)
    recent = make_tweets(30, first=15, start=now - timedelta(days=2), snowflakes=True)
    api.add_tweets(lost + recent)
    api.recent_days = 7  # the monitor was off for ten days
    before = len(api.search_requests())

    outcome = only(collect(make_ws(), EVENT))
    refused, restart = api.search_requests()[before:]
    assert refused.params["since_id"] == stale and "since_id" not in restart.params
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 30, 30)
    assert len(stored_ids(make_ws())) == 40  # the 5 posts of 8 days ago are beyond what recent search serves
    assert cursor(make_ws(), "since_id") == recent[-1]["id"]
    warning = next(r.getMessage() for r in caplog.records if "older than the 7 days" in r.getMessage())
    assert (now - timedelta(days=10, minutes=-9)).strftime("%Y-%m-%d %H:%M UTC") in warning
    assert "endpoint: all can backfill" in warning
    assert only(collect(make_ws(), EVENT)).read == 0  # and the next run goes on from the new since_id


def test_a_cursor_refused_again_after_the_restart_fails_with_one_line(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    api.add_tweets(make_tweets(10))
    collect(make_ws(), EVENT)
    refusal = {"errors": [{"parameters": {"next_token": ["x"]}, "message": "Invalid 'next_token'"}], **INVALID_REQUEST}
    api.fail(Fault(400, refusal), times=2)
    outcome = only(collect(make_ws(), EVENT))
    assert (outcome.status, outcome.message) == (
        "failed",
        "X refused the next_token again after a restart without it; the cursor stays at the last stored page",
    )
    assert len(stored_ids(make_ws())) == 10


def test_a_bad_request_about_anything_else_fails_with_x_s_message(
    api: FakeXApi, make_ws: Callable[..., Workspace]
) -> None:
    refusal = {
        "errors": [
            {"parameters": {"query": ["("]}, "message": "There were errors processing your request: unbalanced parens"}
        ],
        **INVALID_REQUEST,
    }
    api.fail(Fault(400, refusal))
    outcome = only(collect(make_ws(), EVENT))
    assert outcome.status == "failed"
    assert (
        outcome.message
        == "X refused the request (HTTP 400): There were errors processing your request: unbalanced parens; "
        "the cursor stays at the last stored page"
    )
    assert len(api.search_requests()) == 1  # not retried, not restarted


def test_stop_event_ends_the_run_before_any_request(api: FakeXApi, make_ws: Callable[..., Workspace]) -> None:
    api.add_tweets(make_tweets(10))
    stop = threading.Event()
    stop.set()
    assert collect(make_ws(), stop=stop).outcomes == []
    assert api.served == []


def test_api_base_with_a_path_prefix_is_honoured(
    api: FakeXApi, tmp_path: Path, make_ws: Callable[..., Workspace]
) -> None:
    api.add_tweets(make_tweets(3))
    ws = make_ws(api_base=api.url + "/")
    assert only(collect(ws, EVENT)).new == 3
    assert api.search_requests()[0].path == "/2/tweets/search/recent"


# ---- the shared retry helpers -------------------------------------------------------------------


def test_backoff_doubles_within_jitter_and_is_capped() -> None:
    policy = retry.RetryPolicy(backoff_base=1.0, backoff_cap=10.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 10.0)]:
        delays = [retry.backoff_delay(attempt, policy) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_rate_limit_wait_is_bounded() -> None:
    policy = retry.RetryPolicy(max_rate_limit_wait=60)
    assert retry.rate_limit_delay(reset_at=1030.0, now=1000.0, attempt=0, policy=policy) == 31.0
    assert retry.rate_limit_delay(reset_at=990.0, now=1000.0, attempt=0, policy=policy) == 1.0
    with pytest.raises(retry.GaveUpError, match="longer than max_rate_limit_wait"):
        retry.rate_limit_delay(reset_at=2000.0, now=1000.0, attempt=0, policy=policy)


def test_waits_end_at_once_on_shutdown() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(retry.StoppedError):
        retry.wait(3600, stop, "waiting for the rate limit")
    calls: list[int] = []

    def always_503() -> None:
        calls.append(1)
        raise ConnectionError("down")

    policy = retry.RetryPolicy(retries=5, backoff_base=3600)
    with pytest.raises(retry.StoppedError):
        retry.call_with_retries(always_503, lambda _e: retry.Transient("down"), policy, stop)
    assert len(calls) == 1


def test_non_retryable_errors_pass_through_untouched() -> None:
    def refused() -> None:
        raise SourceError("no")

    with pytest.raises(SourceError, match="no"):
        retry.call_with_retries(refused, lambda _e: None, retry.RetryPolicy())


def test_pacer_spaces_requests() -> None:
    now = [100.0]
    slept: list[float] = []
    pacer = retry.Pacer(1.0, clock=lambda: now[0])
    pacer.wait_turn()
    now[0] += 0.25
    stop = threading.Event()
    original_wait = stop.wait

    def record(seconds: float | None = None) -> bool:
        slept.append(seconds or 0.0)
        return original_wait(0)

    stop.wait = record  # type: ignore[method-assign]
    pacer.wait_turn(stop)
    assert slept == [pytest.approx(0.75)]


def test_x_source_only_built_with_a_config(config: Config) -> None:
    from monitor.errors import NotConfiguredError
    from monitor.sources.x import XSource

    with pytest.raises(NotConfiguredError, match=r"\$X_BEARER_TOKEN is not set"):
        XSource.from_config(config)


def test_twarc_archive_import_uses_the_same_normaliser(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    page = json.loads((DATA / "x_search_recent_page.json").read_text(encoding="utf-8"))
    archive = tmp_path / "tweets.jsonl"
    archive.write_text(json.dumps(page) + "\n", encoding="utf-8")
    result = run_cli(write_config(), "import", str(archive), "--event", EVENT, "--format", "twarc")
    assert result.exit_code == 3  # two malformed tweets rejected, three kept
    assert "read 3, new 3, duplicate 0, rejected 2" in result.stdout
    assert "line 1: tweet '281407555555555555': `created_at` is missing or not a string" in result.output
