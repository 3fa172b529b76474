"""The Reddit collector against a fake Reddit on 127.0.0.1, through PRAW (OAuth, rate-limit headers, listings)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import text

from monitor.cli import cli
from monitor.config import parse_config
from monitor.pipeline import CollectResult, Workspace, collect, score
from monitor.posts import Post
from monitor.sources.reddit_payloads import flatten_tree, id_number, listing_page, normalize_things, thread_id
from monitor.store import Store
from tests.fake_http import Fault
from tests.fake_reddit import ACCESS_TOKEN, CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, FakeReddit
from tests.killed_store import KilledError, StoreKilledOnThirdPage
from tests.workspaces import event_rows, workspace_on

EVENT = "instagram-tos-2012"
DATA = Path(__file__).parent / "data"
SECRETS = (CLIENT_SECRET, PASSWORD, ACCESS_TOKEN)


@pytest.fixture
def fake() -> Iterator[FakeReddit]:
    with FakeReddit() as server:
        yield server


@pytest.fixture(autouse=True)
def _app_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDDIT_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", CLIENT_SECRET)
    for name in ("REDDIT_USERNAME", "REDDIT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def reddit_config(tmp_path: Path, fake: FakeReddit, **settings: Any) -> dict[str, Any]:
    event = {
        "name": EVENT,
        "platform": "Instagram",
        "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
        "query": "instagram terms",
        "sources": ["reddit"],
    }
    base = {
        "user_agent": "python:org.example.backlash-tests:1.0 (by /u/nobody)",
        "oauth_url": fake.url,
        "reddit_url": fake.url,
        "backoff_base": 0.01,
        "max_rate_limit_wait": 5,
        "retries": 3,
    }
    return {
        "database": f"sqlite:///{tmp_path / 'data' / 'reddit.db'}",
        "events": [event],
        "sources": {"reddit": base | settings},
    }


@pytest.fixture
def make_ws(tmp_path: Path, fake: FakeReddit) -> Iterator[Callable[..., Workspace]]:
    opened: list[Workspace] = []

    def make(store_class: type[Store] = Store, folder: Path = tmp_path, **settings: Any) -> Workspace:
        workspace = workspace_on(parse_config(reddit_config(folder, fake, **settings), folder), store_class)
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


def keys(ws: Workspace) -> list[str]:
    return sorted(row["post_id"] for row in event_rows(ws.store, EVENT))


def only(result: CollectResult) -> Any:
    (outcome,) = result.outcomes
    return outcome


def cursors(ws: Workspace) -> dict[str, str]:
    return {row["kind"]: row["value"] for row in ws.store.cursors() if row["source"] == "reddit"}


def raw_of(ws: Workspace, post_id: str) -> str:
    with ws.store.engine.connect() as conn:
        return str(conn.execute(text("SELECT raw FROM posts WHERE post_id = :id"), {"id": post_id}).scalar_one())


def thread_settings(link: str, **settings: Any) -> dict[str, Any]:
    return {"threads": {EVENT: [f"https://www.reddit.com/r/instagram/comments/{link}/new_terms/"]}, **settings}


# ---- normalisers: golden test on a recorded thread ----------------------------------------------


def test_normalize_thread_matches_the_recorded_payload() -> None:
    payload = json.loads((DATA / "reddit_thread.json").read_text(encoding="utf-8"))
    expected = json.loads((DATA / "reddit_thread.expected.json").read_text(encoding="utf-8"))
    submission, _ = listing_page(payload[0])
    comments, stubs = flatten_tree(listing_page(payload[1])[0])
    collected_at = datetime(2012, 12, 18, 10, 0, tzinfo=UTC)
    results = list(normalize_things([*submission, *comments], collected_at))
    posts = [r for r in results if isinstance(r, Post)]
    assert [_comparable(p) for p in posts] == expected["posts"]
    assert [r for r in results if isinstance(r, str)] == expected["rejected"]
    assert [{"parent_id": s.parent_id, "children": list(s.children), "depth": s.depth} for s in stubs] == expected[
        "stubs"
    ]
    reply = json.loads(posts[4].raw or "")  # provenance: parent and depth kept, nested replies not
    assert (reply["kind"], reply["data"]["parent_id"], reply["data"]["depth"]) == ("t1", "t1_c7hp4zz", 2)
    assert "replies" not in reply["data"] and reply["data"]["score"] == -4


def _comparable(post: Post) -> dict[str, Any]:
    record = asdict(post)
    record.pop("raw"), record.pop("collected_at")
    record["created_at"] = post.created_at.isoformat()
    return record


@pytest.mark.parametrize(
    "reference",
    [
        "https://www.reddit.com/r/Instagram/comments/14yq0y/updated_terms/",
        "https://old.reddit.com/r/Instagram/comments/14yq0y/",
        "https://redd.it/14yq0y",
        "t3_14yq0y",
        "14YQ0Y",
    ],
)
def test_thread_references_give_the_id(reference: str) -> None:
    assert thread_id(reference) == "14yq0y"
    assert id_number("t1_" + "10") == 36


# ---- threads ------------------------------------------------------------------------------------


def test_thread_reads_the_whole_tree_expanding_more_stubs(fake: FakeReddit, make_ws: Callable[..., Workspace]) -> None:
    fake.shown = 12
    link = fake.add_submission("instagram", "Instagram's new terms &amp; you", "Ads can use your photos")
    top = fake.add_comments(link, 150)
    replies = fake.add_comments(link, 20, parents=top[:20])
    fake.delete(top[5])
    fake.delete(top[6], "[removed]")
    ws = make_ws(**thread_settings(link))
    outcome = only(collect(ws))
    assert (outcome.status, outcome.new) == ("ok", 171)
    assert keys(ws) == sorted([f"t3_{link}"] + [f"t1_{c}" for c in top + replies])
    assert len(fake.requests_to("/api/morechildren")) == 2  # 159 hidden comments: 100 + 59
    rows = {row["post_id"]: row for row in event_rows(ws.store, EVENT)}
    assert rows[f"t3_{link}"]["text"] == "Instagram's new terms & you\n\nAds can use your photos"
    assert rows[f"t1_{top[7]}"]["text"] == "Comment 7: quitting Instagram & its new terms"
    reply = json.loads(raw_of(ws, f"t1_{replies[0]}"))["data"]
    assert (reply["parent_id"], reply["depth"]) == (f"t1_{top[0]}", 1)  # kept in the raw payload
    assert (rows[f"t1_{top[5]}"]["text"], rows[f"t1_{top[5]}"]["author"]) == ("[deleted]", None)
    assert rows[f"t1_{top[6]}"]["text"] == "[removed]"
    assert rows[f"t1_{top[9]}"]["url"].startswith("https://www.reddit.com/r/instagram/comments/")
    result = score(ws)
    assert result.skipped.get("skipped:deleted") == 2  # counted, stored, not scored


def test_more_budget_carries_over_to_the_next_run_without_asking_twice(
    fake: FakeReddit, make_ws: Callable[..., Workspace]
) -> None:
    fake.shown = 10
    link = fake.add_submission("instagram", "Instagram terms")
    comments = fake.add_comments(link, 310)
    ws = make_ws(**thread_settings(link, max_more_requests=2))
    assert only(collect(ws)).new == 211  # the submission, 10 shown, 200 of 300 hidden
    asked = [r.params["children"].split(",") for r in fake.requests_to("/api/morechildren")]
    first_asked = {i for batch in asked for i in batch}
    assert only(collect(ws)).new == 100
    later = [r.params["children"].split(",") for r in fake.requests_to("/api/morechildren")][len(asked) :]
    assert len(later) == 1 and not first_asked & set(later[0])  # nothing read before is asked again
    assert keys(ws) == sorted([f"t3_{link}"] + [f"t1_{c}" for c in comments])
    newer = fake.add_comments(link, 3, parents=comments[:3])  # replies hidden under old comments
    before = len(fake.requests_to("/api/morechildren"))
    assert only(collect(ws)).new == 3
    (third,) = fake.requests_to("/api/morechildren")[before:]
    assert sorted(third.params["children"].split(",")) == sorted(newer)


def test_continue_this_thread_is_followed(fake: FakeReddit, make_ws: Callable[..., Workspace]) -> None:
    fake.max_depth = 3
    link = fake.add_submission("instagram", "Instagram terms")
    chain = [fake.add_comment(link, "Instagram terms: level 0")]
    for level in range(1, 6):
        chain.append(fake.add_comment(link, f"Instagram terms: level {level}", parent=chain[-1]))
    ws = make_ws(**thread_settings(link))
    assert only(collect(ws)).status == "ok"
    assert keys(ws) == sorted([f"t3_{link}"] + [f"t1_{c}" for c in chain])
    focused = [r.params.get("comment") for r in fake.requests_to(f"/comments/{link}") if r.params.get("comment")]
    assert focused == [chain[2], chain[4]]


# ---- listings -----------------------------------------------------------------------------------


def test_subreddit_new_and_comments_page_with_after_and_match_the_query(
    fake: FakeReddit, make_ws: Callable[..., Workspace]
) -> None:
    matching = [fake.add_submission("instagram", f"Instagram terms, take {n}") for n in range(230)]
    other = fake.add_submission("instagram", "My cat photo")
    link = matching[0]
    comments = fake.add_comments(link, 40)
    ws = make_ws(subreddits=["r/instagram"])
    outcome = only(collect(ws))
    assert (outcome.status, outcome.read) == ("ok", 231 + 40)
    assert keys(ws) == sorted([f"t3_{s}" for s in matching] + [f"t1_{c}" for c in comments])
    assert f"t3_{other}" not in keys(ws)
    pages = fake.requests_to("/r/instagram/new")
    assert [r.params.get("after") for r in pages] == [None, f"t3_{matching[131]}", f"t3_{matching[31]}"]
    assert all(r.params["limit"] == "100" for r in pages)
    assert cursors(ws) == {
        "r/instagram new since": f"t3_{other}",
        "r/instagram comments since": f"t1_{comments[-1]}",
    }
    fresh = fake.add_submission("instagram", "Instagram terms again")
    before = len(fake.requests_to("/r/instagram/new"))
    assert only(collect(ws)).new == 1 and keys(ws).count(f"t3_{fresh}") == 1
    assert len(fake.requests_to("/r/instagram/new")) == before + 1  # the first page reached the old newest


def test_site_wide_search_newest_first_with_page_edge_duplicates(
    fake: FakeReddit, make_ws: Callable[..., Workspace]
) -> None:
    fake.edge_duplicates = True  # each page repeats the last item of the one before
    found = [fake.add_submission(f"sub{n % 4}", f"Instagram terms {n}") for n in range(250)]
    ws = make_ws(search=True)
    outcome = only(collect(ws))
    assert (outcome.read, outcome.new) == (250, 250)
    assert keys(ws) == sorted(f"t3_{s}" for s in found)
    search = fake.requests_to("/search")
    assert search[0].params["q"] == "instagram terms" and search[0].params["sort"] == "new"
    assert cursors(ws) == {"search since": f"t3_{found[-1]}"}


def test_listing_limit_is_said_when_a_run_hits_it(
    fake: FakeReddit, make_ws: Callable[..., Workspace], caplog: pytest.LogCaptureFixture
) -> None:
    fake.listing_cap = 950
    for n in range(1200):
        fake.add_submission("instagram", f"Instagram terms {n}")
    ws = make_ws(subreddits=["instagram"])
    with caplog.at_level(logging.WARNING, logger="monitor.sources.reddit"):
        outcome = only(collect(ws))
    assert outcome.new == 950
    assert "r/instagram new ended after 950 items, Reddit's listing limit (about 1000)" in caplog.text
    assert "Reddit cannot be backfilled beyond its listings" in caplog.text


def test_run_killed_mid_way_then_rerun_equals_a_clean_run(
    fake: FakeReddit, make_ws: Callable[..., Workspace], tmp_path: Path
) -> None:
    fake.shown = 20
    link = fake.add_submission("instagram", "Instagram terms megathread")
    fake.add_comments(link, 250)
    for n in range(260):
        fake.add_submission("instagram", f"Instagram terms {n}")
    settings = thread_settings(link, subreddits=["instagram"], max_more_requests=2)
    clean, killed = make_ws(folder=tmp_path / "clean", **settings), make_ws(StoreKilledOnThirdPage, **settings)
    collect(clean)  # 20 shown and 200 of 230 hidden comments, then the subreddit
    StoreKilledOnThirdPage.calls = 0
    with pytest.raises(KilledError):
        collect(killed)  # dies storing the second batch of hidden comments
    assert set(cursors(killed)) == {f"thread {link} seen_to"}
    fake.add_comments(link, 5)  # arrive while the collector is down
    collect(make_ws(**settings))
    collect(clean)
    assert keys(make_ws(**settings)) == keys(clean)
    assert len(keys(clean)) == 1 + 250 + 5 + 260
    assert only(collect(make_ws(**settings))).new == 0


def test_run_killed_while_paging_a_listing_resumes_below_the_stored_page(
    fake: FakeReddit, make_ws: Callable[..., Workspace], tmp_path: Path
) -> None:
    for n in range(450):
        fake.add_submission("instagram", f"Instagram terms {n}")
    clean, killed = make_ws(folder=tmp_path / "clean", search=True), make_ws(StoreKilledOnThirdPage, search=True)
    collect(clean)
    StoreKilledOnThirdPage.calls = 0
    with pytest.raises(KilledError):
        collect(killed)
    stored = cursors(killed)
    assert (
        set(stored) == {"search after", "search pending"} and stored["search pending"] == cursors(clean)["search since"]
    )
    before = len(fake.requests_to("/search"))
    assert only(collect(make_ws(search=True))).status == "ok"
    assert fake.requests_to("/search")[before].params["after"] == stored["search after"]  # below the stored page
    assert keys(make_ws(search=True)) == keys(clean) and len(keys(clean)) == 450
    assert cursors(make_ws(search=True)) == cursors(clean)


# ---- rate limits, errors, credentials -----------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(429, {"message": "Too Many Requests", "error": 429}, headers={"x-ratelimit-reset": "0"}),
        Fault(503, {"message": "Service Unavailable", "error": 503}),
        Fault(500, {"message": "oops", "error": 500}),
        Fault(garbage=True),
        Fault(drop=True),
    ],
    ids=["429", "503", "500", "garbage", "dropped"],
)
def test_transient_failures_are_retried_with_the_shared_policy(
    fake: FakeReddit, make_ws: Callable[..., Workspace], fault: Fault
) -> None:
    for n in range(150):
        fake.add_submission("instagram", f"Instagram terms {n}")
    fake.fail(fault, times=1, after=2, path="/search")  # token, first page, then the fault
    outcome = only(collect(make_ws(search=True)))
    assert (outcome.status, outcome.new) == ("ok", 150)


def test_low_remaining_requests_wait_for_the_reset_or_end_the_run(
    fake: FakeReddit, make_ws: Callable[..., Workspace]
) -> None:
    for n in range(300):
        fake.add_submission("instagram", f"Instagram terms {n}")
    fake.rate_remaining = 3  # the next answers say 2, 1, 0 requests are left
    fake.rate_reset = 3600
    ws = make_ws(search=True, min_remaining_requests=2, max_rate_limit_wait=60)
    outcome = only(collect(ws))
    assert outcome.status == "failed" and "longer than max_rate_limit_wait" in outcome.message
    assert len(fake.requests_to("/search")) == 2  # no request after the headers said 1 was left
    assert len(keys(ws)) == 200  # stored pages stay; the next run resumes from the cursor


def run_cli(tmp_path: Path, document: dict[str, Any], *args: str) -> Result:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(path), *args], catch_exceptions=False)


def test_rejected_app_credentials_fail_in_one_line_without_the_secret(
    fake: FakeReddit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "wrong-secret-42")
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, search=True), "collect")
    assert result.exit_code == 1
    assert "Reddit refused the app credentials in $REDDIT_CLIENT_ID / $REDDIT_CLIENT_SECRET (HTTP 401)" in result.output
    assert "wrong-secret-42" not in result.output and "Traceback" not in result.output


def test_forbidden_subreddit_fails_in_one_line(fake: FakeReddit, tmp_path: Path) -> None:
    fake.fail(Fault(403, {"message": "Forbidden", "error": 403}), path="/r/")
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, subreddits=["secret"]), "collect")
    assert result.exit_code == 1
    assert "r/secret new: Reddit refused access (HTTP 403)" in result.output


def test_script_app_logs_in_with_the_user_and_a_wrong_password_is_one_line(
    fake: FakeReddit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_submission("instagram", "Instagram terms")
    monkeypatch.setenv("REDDIT_USERNAME", USERNAME)
    monkeypatch.setenv("REDDIT_PASSWORD", PASSWORD)
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, search=True), "collect")
    assert result.exit_code == 0, result.output
    (token,) = fake.requests_to("/api/v1/access_token")
    assert token.body["grant_type"] == "password" and token.body["username"] == USERNAME
    monkeypatch.setenv("REDDIT_PASSWORD", "not-the-password")
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, search=True), "collect")
    assert result.exit_code == 1
    assert "Reddit refused the login in $REDDIT_USERNAME / $REDDIT_PASSWORD (invalid_grant)" in result.output
    assert "not-the-password" not in result.output


def test_read_only_without_a_user(fake: FakeReddit, make_ws: Callable[..., Workspace]) -> None:
    fake.add_submission("instagram", "Instagram terms")
    collect(make_ws(search=True))
    (token,) = fake.requests_to("/api/v1/access_token")
    assert token.body["grant_type"] == "client_credentials"
    assert (
        fake.served[-1].headers["user-agent"].startswith("python:org.example.backlash-tests:1.0 (by /u/nobody) PRAW/")
    )


@pytest.mark.parametrize(
    ("settings", "unset", "line"),
    [
        ({"user_agent": ""}, None, "Reddit source skipped: sources.reddit.user_agent is empty"),
        ({"search": True}, "REDDIT_CLIENT_SECRET", "Reddit source skipped: $REDDIT_CLIENT_SECRET not set"),
        ({}, None, "Reddit source skipped: no sources.reddit.threads or subreddits, and search is off"),
    ],
    ids=["no-user-agent", "no-secret", "nothing-to-follow"],
)
def test_missing_settings_skip_reddit_with_a_clear_line(
    fake: FakeReddit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, Any],
    unset: str | None,
    line: str,
) -> None:
    if unset:
        monkeypatch.delenv(unset)
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, **settings), "collect")
    assert result.exit_code == 0
    assert line in result.output
    assert fake.served == []


def test_secrets_never_reach_output_logs_or_the_database(
    fake: FakeReddit,
    tmp_path: Path,
    make_ws: Callable[..., Workspace],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("", "urllib3", "prawcore", "praw"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv("REDDIT_USERNAME", USERNAME)
    monkeypatch.setenv("REDDIT_PASSWORD", PASSWORD)
    fake.shown = 5
    link = fake.add_submission("instagram", "Instagram terms")
    fake.add_comments(link, 30)
    fake.fail(Fault(503), after=2)
    settings = thread_settings(link, search=True)
    assert only(collect(make_ws(**settings))).new == 31
    assert "Fetching: GET" in caplog.text  # prawcore's request lines were captured
    fake.add_comments(link, 3)
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, **settings), "collect")
    output = result.output + run_cli(tmp_path, reddit_config(tmp_path, fake, **settings), "status").output
    assert result.exit_code == 0 and "new 3" in output
    database = (tmp_path / "data" / "reddit.db").read_bytes()
    for secret in SECRETS:
        assert secret not in caplog.text and secret not in output
        assert secret.encode() not in database


def test_report_shows_reddit_beside_the_other_sources(fake: FakeReddit, make_ws: Callable[..., Workspace]) -> None:
    from monitor.pipeline import report

    fake.shown = 5
    link = fake.add_submission("instagram", "Instagram terms")
    fake.add_comments(link, 30)
    ws = make_ws(**thread_settings(link))
    collect(ws)
    score(ws)
    (written,) = report(ws, EVENT)
    summary = json.loads((written.folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["coverage"]["per_source"] == {"reddit": 31}
    assert summary["coverage"]["feeds_read"] == {f"reddit@thread {link}": 31}


def test_config_mistakes_name_the_field(fake: FakeReddit, tmp_path: Path) -> None:
    document = reddit_config(tmp_path, fake, threads={EVENT: ["https://www.reddit.com/r/x/wiki/rules!"]})
    result = run_cli(tmp_path, document, "collect")
    assert result.exit_code == 2
    assert "sources.reddit.threads.instagram-tos-2012[0]: " in result.output
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, threads={"no-such-event": ["abc123"]}), "collect")
    assert result.exit_code == 2 and "sources.reddit.threads.no-such-event: no event has this name" in result.output
    result = run_cli(tmp_path, reddit_config(tmp_path, fake, client_secret="s3cr3t-in-the-file"), "collect")
    assert result.exit_code == 2 and "sources.reddit.client_secret_env" in result.output
    assert "s3cr3t-in-the-file" not in result.output
