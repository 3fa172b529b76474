"""The Mastodon collector against two fake instances on 127.0.0.1, through Mastodon.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import parse_config
from monitor.pipeline import CollectResult, Workspace, collect
from monitor.sources.mastodon_payloads import html_to_text, normalize_status
from monitor.store import Store
from tests.fake_http import Fault
from tests.fake_mastodon import BASE_ID, FakeMastodon, make_statuses
from tests.killed_store import KilledError, StoreKilledOnThirdPage
from tests.workspaces import event_rows, workspace_on

EVENT = "instagram-tos-2012"
TOKEN = "mastodon-secret-token-0123456789abcdef"


@pytest.fixture
def instances() -> Iterator[tuple[FakeMastodon, FakeMastodon]]:
    with FakeMastodon(TOKEN) as first, FakeMastodon("other-instance-token") as second:
        yield first, second


def mastodon_config(tmp_path: Path, hosts: list[str], **settings: Any) -> dict[str, Any]:
    event = {
        "name": EVENT,
        "platform": "Instagram",
        "milestones": {"announced": "2012-12-17", "reversed": "2012-12-20", "effective": "2013-01-16"},
        "query": "instagram terms",
        "sources": ["mastodon"],
    }
    fast = {"scheme": "http", "backoff_base": 0.01, "max_rate_limit_wait": 5, "retries": 3}
    return {
        "database": f"sqlite:///{tmp_path / 'data' / 'mastodon.db'}",
        "events": [event],
        "sources": {"mastodon": {"instances": hosts, "hashtags": ["instagram"], **fast, **settings}},
    }


@pytest.fixture
def make_ws(tmp_path: Path, instances: tuple[FakeMastodon, FakeMastodon]) -> Iterator[Callable[..., Workspace]]:
    opened: list[Workspace] = []

    def make(
        store_class: type[Store] = Store, folder: Path = tmp_path, hosts: list[str] | None = None, **settings: Any
    ) -> Workspace:
        names = hosts if hosts is not None else [instances[0].host]
        config = parse_config(mastodon_config(folder, names, **settings), folder)
        workspace = workspace_on(config, store_class)
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


def stored(ws: Workspace) -> list[dict[str, Any]]:
    return event_rows(ws.store, EVENT)


def keys(ws: Workspace) -> list[tuple[str, str]]:
    return sorted((row["source"], row["post_id"]) for row in stored(ws))


def ids(host: str, first: int, count: int) -> list[tuple[str, str]]:
    return sorted((f"mastodon@{host}", str(BASE_ID + n)) for n in range(first, first + count))


def only(result: CollectResult) -> Any:
    (outcome,) = result.outcomes
    return outcome


def cursors(ws: Workspace) -> dict[str, str]:
    return {row["kind"]: row["value"] for row in ws.store.cursors() if row["source"] == "mastodon"}


# ---- normalisers --------------------------------------------------------------------------------


def test_html_content_becomes_plain_text() -> None:
    html = (
        '<p>Quitting <a href="https://m.s/tags/instagram" class="mention hashtag" rel="tag">#<span>Instagram'
        "</span></a> &amp; its &quot;new&quot; terms &#39;today&#39; &lt;3</p><p>line one<br />line two "
        '<a href="https://example.com/long/path" rel="nofollow noopener"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.com/long</span><span class="invisible">/path</span></a></p>'
    )
    assert html_to_text(html) == (
        "Quitting #Instagram & its \"new\" terms 'today' <3\n\nline one\nline two https://example.com/long/path"
    )


def test_boost_is_a_repost_with_the_original_text_and_bot_flag() -> None:
    (original,) = make_statuses(1, "a.example")
    (boost,) = make_statuses(1, "a.example", first=5)
    boost |= {"content": "", "reblog": original, "account": {**boost["account"], "bot": True, "acct": "bot@b.example"}}
    post = normalize_status(boost, "a.example", datetime.now(UTC))
    assert (post.source, post.id, post.is_repost, post.is_bot, post.author) == (
        "mastodon@a.example", str(BASE_ID + 5), True, True, "bot@b.example",
    )  # fmt: skip
    assert post.repost_of == original["uri"]
    assert post.text == 'Post 0: quitting #instagram & its "new" terms'
    assert post.url == boost["url"]


# ---- collecting ---------------------------------------------------------------------------------


def test_hashtag_timeline_pages_by_link_header_and_stores_plain_text(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    instance = instances[0]
    instance.add_statuses(make_statuses(100, instance.host))
    ws = make_ws()
    outcome = only(collect(ws))
    assert (outcome.status, outcome.read, outcome.new) == ("ok", 100, 100)
    assert keys(ws) == ids(instance.host, 0, 100)
    requests = instance.timeline_requests()
    assert [r.params.get("max_id") for r in requests] == [None, str(BASE_ID + 60), str(BASE_ID + 20), str(BASE_ID)]
    assert all(r.params["limit"] == "40" for r in requests)
    assert cursors(ws) == {f"{instance.host}#instagram since_id": str(BASE_ID + 99)}
    row = next(r for r in stored(ws) if r["post_id"] == str(BASE_ID + 7))
    assert row["text"] == 'Post 7: quitting #instagram & its "new" terms'
    assert row["url"] == f"https://{instance.host}/@user2/{BASE_ID + 7}"
    assert (row["likes"], row["reposts"], row["replies"], row["lang"]) == (0, 1, 1, "en")


def test_second_run_asks_since_the_newest_status(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    instance = instances[0]
    instance.add_statuses(make_statuses(50, instance.host))
    collect(make_ws())
    instance.add_statuses(make_statuses(10, instance.host, first=50))
    before = len(instance.timeline_requests())
    outcome = only(collect(make_ws()))
    assert (outcome.read, outcome.new) == (10, 10)
    assert instance.timeline_requests()[before].params["since_id"] == str(BASE_ID + 49)
    assert keys(make_ws()) == ids(instance.host, 0, 60)


def test_two_instances_keep_ids_apart_and_cursors_per_instance(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    first, second = instances
    first.add_statuses(make_statuses(30, first.host))
    second.add_statuses(make_statuses(20, second.host))  # the same ids on another instance
    ws = make_ws(hosts=[first.host, second.host], hashtags=["instagram", "boycottinstagram"])
    outcome = only(collect(ws))
    assert outcome.new == 50
    assert keys(ws) == sorted(ids(first.host, 0, 30) + ids(second.host, 0, 20))
    assert cursors(ws) == {
        f"{first.host}#instagram since_id": str(BASE_ID + 29),
        f"{second.host}#instagram since_id": str(BASE_ID + 19),
    }  # #boycottinstagram was read on both and is empty: no since_id yet
    assert {r.path for r in second.timeline_requests()} == {
        "/api/v1/timelines/tag/instagram",
        "/api/v1/timelines/tag/boycottinstagram",
    }


def test_report_and_digest_coverage_name_every_instance_read_even_without_posts(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    import json

    from monitor.digest import coverage_lines
    from monitor.pipeline import analyze_event, report

    first, second = instances
    first.add_statuses(make_statuses(30, first.host))
    second.add_statuses(make_statuses(5, second.host, tag="cats"))  # nothing under #instagram there
    ws = make_ws(hosts=[first.host, second.host])
    collect(ws)
    first.add_statuses(make_statuses(4, first.host, first=30))
    collect(ws)  # statuses read add up per feed: 30, then 4 more
    assert keys(ws) == ids(first.host, 0, 34)  # the second instance gave no post

    (written,) = report(ws, EVENT)
    summary = json.loads((written.folder / "summary.json").read_text(encoding="utf-8"))
    feeds = {f"mastodon@{first.host} #instagram": 34, f"mastodon@{second.host} #instagram": 0}
    assert summary["coverage"]["feeds_read"] == feeds
    assert summary["coverage"]["per_source"] == {f"mastodon@{first.host}": 34}
    page = (written.folder / "index.html").read_text(encoding="utf-8")
    assert ", ".join(f"{feed} {n}" for feed, n in sorted(feeds.items())) in page  # feeds in name order
    lines = coverage_lines(analyze_event(ws, EVENT), None)
    assert "Feeds read (statuses): " + ", ".join(f"{feed} {n}" for feed, n in sorted(feeds.items())) in lines


def test_bots_are_stored_flagged_and_skipped_by_scoring(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    instance = instances[0]
    instance.add_statuses(make_statuses(10, instance.host, bots=[3, 4]))
    ws = make_ws()
    collect(ws)
    flagged = sorted(row["post_id"] for row in stored(ws) if row["is_bot"])
    assert flagged == [str(BASE_ID + 3), str(BASE_ID + 4)]
    from monitor.pipeline import score

    result = score(ws)
    assert result.skipped.get("skipped:bot") == 2


def test_posts_before_the_window_are_not_stored_and_end_the_paging(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    instance = instances[0]
    old = make_statuses(50, instance.host, start=datetime(2012, 11, 1, tzinfo=UTC))  # before the baseline
    instance.add_statuses(old + make_statuses(30, instance.host, first=100))
    ws = make_ws()
    outcome = only(collect(ws))
    assert outcome.new == 30 and keys(ws) == ids(instance.host, 100, 30)
    assert len(instance.timeline_requests()) == 1  # the first page reached November: no older page asked for


def test_only_posts_inside_the_event_window_are_asked_for_and_stored(
    instances: tuple[FakeMastodon, FakeMastodon], tmp_path: Path
) -> None:
    instance = instances[0]
    statuses = make_statuses(120, instance.host, every=timedelta(hours=1), time_ids=True)  # Dec 17 12:00 to Dec 22
    instance.add_statuses(statuses)
    document = mastodon_config(tmp_path, [instance.host])
    document["events"][0] |= {"start": "2012-12-18", "end": "2012-12-20"}
    ws = workspace_on(parse_config(document, tmp_path), Store)

    outcome = only(collect(ws))
    inside = [s["id"] for s in statuses if "2012-12-18" <= s["created_at"] < "2012-12-20"]
    assert len(inside) == 48 and outcome.new == 48
    assert sorted(row["post_id"] for row in stored(ws)) == sorted(inside)
    first = instance.timeline_requests()[0]
    end_ms = int(datetime(2012, 12, 20, tzinfo=UTC).timestamp() * 1000)
    assert first.params["max_id"] == str(end_ms << 16)  # the end asked of the server, not filtered here
    assert outcome.read == 60  # 12 hours before the start were read on the last page and not stored
    assert only(collect(ws)).new == 0
    ws.close()


def test_run_killed_mid_way_then_rerun_equals_a_clean_run(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace], tmp_path: Path
) -> None:
    instance = instances[0]
    instance.add_statuses(make_statuses(40, instance.host))
    clean, killed = make_ws(folder=tmp_path / "clean"), make_ws(StoreKilledOnThirdPage)
    collect(clean), collect(killed)
    instance.add_statuses(make_statuses(150, instance.host, first=40))
    collect(clean)
    StoreKilledOnThirdPage.calls = 0
    with pytest.raises(KilledError):
        collect(killed)
    feed = f"{instance.host}#instagram"
    assert cursors(killed) == {
        f"{feed} since_id": str(BASE_ID + 39),
        f"{feed} max_id": str(BASE_ID + 110),
        f"{feed} pending": str(BASE_ID + 189),
    }
    instance.add_statuses(make_statuses(5, instance.host, first=190))  # arrives while the collector is down
    assert only(collect(make_ws())).status == "ok"
    assert keys(make_ws()) == keys(clean) == ids(instance.host, 0, 190)
    assert only(collect(make_ws())).new == 5


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        (Fault(429, {"error": "Too many requests"}), 1),
        (Fault(503, {"error": "unavailable"}), 2),
        (Fault(500, {"error": "oops"}), 1),
        (Fault(garbage=True), 1),
        (Fault(drop=True), 1),
    ],
    ids=["429", "503-twice", "500", "garbage", "dropped"],
)
def test_transient_failures_are_retried(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace], fault: Fault, times: int
) -> None:
    instance = instances[0]
    instance.add_statuses(make_statuses(60, instance.host))
    instance.fail(fault, times=times, after=1)
    ws = make_ws()
    outcome = only(collect(ws))
    assert (outcome.status, outcome.new) == ("ok", 60)


def test_rate_limit_headers_make_the_collector_wait_for_the_reset(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    instance = instances[0]
    instance.add_statuses(make_statuses(100, instance.host))
    instance.rate_remaining = 3  # the next answers say 2, 1, 0 requests are left
    instance.rate_reset_in = timedelta(hours=1)
    ws = make_ws(min_remaining_requests=2, max_rate_limit_wait=60)
    outcome = only(collect(ws))
    assert outcome.status == "failed" and "longer than max_rate_limit_wait" in outcome.message
    assert len(instance.timeline_requests()) == 1  # no request after the headers said the budget was spent
    assert len(keys(ws)) == 40  # the first page is kept; the next run resumes from its cursor


def test_malformed_status_is_skipped(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace]
) -> None:
    instance = instances[0]
    statuses = make_statuses(5, instance.host)
    del statuses[1]["content"]
    instance.add_statuses(statuses)
    outcome = only(collect(make_ws()))
    assert (outcome.status, outcome.new, outcome.malformed) == ("ok", 4, 1)


# ---- search and credentials ---------------------------------------------------------------------


def test_search_runs_with_a_token_on_its_instance_only(
    instances: tuple[FakeMastodon, FakeMastodon], make_ws: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", TOKEN)
    first, second = instances
    first.add_statuses(make_statuses(45, first.host, tag="photos"))  # not tagged #instagram: search finds them
    second.add_statuses(make_statuses(3, second.host))
    ws = make_ws(hosts=[first.host, second.host])
    outcome = only(collect(ws))
    assert outcome.new == 48
    searches = first.requests_to("/api/v2/search")
    assert [s.params.get("max_id") for s in searches] == [None, str(BASE_ID + 5)]
    assert searches[0].params["type"] == "statuses" and searches[0].params["q"] == "instagram terms"
    assert second.requests_to("/api/v2/search") == []
    assert all("authorization" not in r.headers for r in second.served)  # the token never goes to another instance
    assert cursors(ws)[f"{first.host}?search since_id"] == str(BASE_ID + 44)


def run_cli(tmp_path: Path, document: dict[str, Any], *args: str) -> Result:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(path), *args], catch_exceptions=False)


def test_no_hashtags_and_no_token_skips_mastodon_with_a_clear_line(
    instances: tuple[FakeMastodon, FakeMastodon], tmp_path: Path
) -> None:
    result = run_cli(tmp_path, mastodon_config(tmp_path, [instances[0].host], hashtags=[]), "collect")
    assert result.exit_code == 0
    assert "mastodon: skipped — Mastodon source skipped: no sources.mastodon.hashtags" in result.output
    assert "$MASTODON_ACCESS_TOKEN is not set" in result.output


def test_rejected_token_fails_without_showing_it(
    instances: tuple[FakeMastodon, FakeMastodon], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", "wrong-token-42")
    result = run_cli(tmp_path, mastodon_config(tmp_path, [instances[0].host]), "collect")
    assert result.exit_code == 1
    assert "refused the access token in $MASTODON_ACCESS_TOKEN (HTTP 401)" in result.output
    assert "wrong-token-42" not in result.output


def test_token_never_appears_in_logs_at_debug(
    instances: tuple[FakeMastodon, FakeMastodon],
    make_ws: Callable[..., Workspace],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("", "urllib3", "mastodon"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", TOKEN)
    instances[0].add_statuses(make_statuses(50, instances[0].host))
    instances[0].fail(Fault(503), after=1)
    ws = make_ws()
    collect(ws)
    assert "GET /api/v1/timelines/tag/instagram" in caplog.text  # urllib3's request lines were captured
    assert TOKEN not in caplog.text
    assert all(TOKEN not in (run.message or "") for run in ws.store.recent_runs(10))
