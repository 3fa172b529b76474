"""Scoring: parity with vaderSentiment, the domain lexicon, churn intent, aspects, languages, versions, workers."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from monitor.cli import cli
from monitor.config import DEFAULT_CHURN_PATTERNS, parse_config
from monitor.pipeline import Workspace, open_workspace, score
from monitor.posts import Post
from monitor.scoring import (
    _ASCII_LOOKALIKES,
    GatedSearch,
    Scorer,
    ScorerSpec,
    churn_parts,
    compile_aspect,
    preprocess,
    primary_language,
    without_urls,
)
from tests.conftest import BASE_CONFIG

EVENT = "instagram-tos-2012"
WORDS = [
    "instagram",
    "terms",
    "policy",
    "photos",
    "ads",
    "privacy",
    "users",
    "app",
    "new",
    "change",
    "today",
    "they",
    "we",
    "my",
    "your",
    "our",
    "it",
    "this",
    "love",
    "hate",
    "great",
    "awful",
    "terrible",
    "good",
    "bad",
    "happy",
    "sad",
    "angry",
    "fine",
    "okay",
    "nice",
    "horrible",
    "amazing",
    "worst",
    "best",
]
MODIFIERS = ["not", "very", "really", "extremely", "barely", "never", "kind of", "but", "no", "so", "totally"]
MODIFIERS += ["never so", "never this", "without doubt", "at least", "least", "very least", "don't", "isn't", "nor"]
MODIFIERS += ["or", "the shit", "the bomb", "yeah right", "kiss of death", "sort of", "bus stop", "this", "ain't"]
EXTRAS = ["!", "!!!", "?", ":)", ":(", ":D", "lol", "LOVE", "HATE", "#boycott", "😠", "😍", "...", "sort of"]


def generated_texts(count: int, seed: int = 7) -> list[str]:
    """Varied posts without URLs, HTML entities or a retweet prefix, built from word lists."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 25))]
        for _ in range(rng.randint(0, 4)):
            words.insert(rng.randint(0, len(words)), rng.choice(MODIFIERS + EXTRAS))
        text = " ".join(words)
        texts.append(text.capitalize() if rng.random() < 0.5 else text.upper() if rng.random() < 0.1 else text)
    return texts


def test_scores_are_exactly_vaders_for_plain_texts() -> None:
    scorer = Scorer(ScorerSpec())
    reference = SentimentIntensityAnalyzer()
    texts = generated_texts(600)
    assert len(set(texts)) > 550
    for text in texts:
        assert scorer.polarity(text) == reference.polarity_scores(text), text


def test_preprocessing_drops_urls_and_retweet_prefix() -> None:
    assert preprocess("RT @someone: I love it & more https://t.co/abc") == "I love it & more "
    assert preprocess("see www.example.org/x now") == "see  now"
    assert preprocess("not a RT @x: prefix") == "not a RT @x: prefix"
    reference = SentimentIntensityAnalyzer().polarity_scores("I love it & more ")
    assert Scorer(ScorerSpec()).polarity("RT @someone: I love it & more https://t.co/abc") == reference


def test_lexicon_override_changes_the_score_of_a_post_containing_it() -> None:
    text = "I will boycott this app"
    plain = Scorer(ScorerSpec()).polarity(text)["compound"]
    stronger = Scorer(ScorerSpec(lexicon={"boycott": -3.5})).polarity(text)["compound"]
    assert stronger < plain < 0
    assert Scorer(ScorerSpec(lexicon={"boycott": -3.5})).polarity("lovely day")["compound"] == pytest.approx(
        Scorer(ScorerSpec()).polarity("lovely day")["compound"]
    )


def test_hashtags_are_scored_by_their_word_and_by_an_explicit_entry() -> None:
    vader = SentimentIntensityAnalyzer()
    assert Scorer(ScorerSpec()).polarity("#boycott")["compound"] == vader.polarity_scores("boycott")["compound"] < 0
    assert Scorer(ScorerSpec()).polarity("#deleteinstagram now")["compound"] == 0.0
    explicit = Scorer(ScorerSpec(lexicon={"#deleteinstagram": -3.0})).polarity("#deleteinstagram now")["compound"]
    assert explicit < -0.5
    both = ScorerSpec(lexicon={"boycott": -1.0, "#boycott": -3.0})
    assert (
        Scorer(both).polarity("#boycott")["compound"]
        == Scorer(ScorerSpec(lexicon={"boycott": -3.0})).polarity("boycott")["compound"]
    )


CHURN_SENTENCES = [
    ("I'm deleting my Instagram tonight", True),
    ("Instagram deleted my photo", False),
    ("I quit Instagram. Done.", True),
    ("Quitting instagram after this terms change", True),
    ("leaving Instagram for good", True),
    ("Deactivating my instagram account right now", True),
    ("just deleted my account, bye", True),
    ("Going to delete my account tomorrow", True),
    ("#deleteinstagram", False),  # a hashtag alone says nothing about its author
    ("time to #QuitInstagram", False),
    ("Moving to Flickr, see you there", True),
    ("moving over to Flickr", True),
    ("Bye bye Instagram, it was nice", True),
    ("Goodbye Instagram", True),
    ("switching to Flickr today", True),
    ("I'm done with Instagram", True),
    ("closing my Instagram account", True),
    ("I will never use Instagram again", True),
    ("Instagram lost me as a user", False),
    ("I love Instagram", False),
    ("Instagram's new terms are scary", False),
    ("Read the new Instagram terms here", False),
    ("Should I quit my job?", False),
    ("I can't delete the photo from my feed", False),
    ("My friend is moving to Berlin", False),
    ("Instagram will not sell your photos, says Instagram", False),
    ("moving to instagram from facebook", False),
    ("Not leaving Instagram, the backlash is overblown", False),
    ("Instagram left out the ads clause", False),
    ("I will keep my Instagram account", False),
    # the kinds of real posts that fooled the old keyword patterns, and those they missed (issue 12)
    ("Everyone is leaving Instagram because of the new terms", False),
    ("Planning to Quit Instagram? Here are Top 5 Alternatives", False),
    ("CEO Begs Bots Not to Quit Instagram", False),
    ("#ByeInstagram", False),
    ("Calling the CEO names every day until he deletes my account", False),
    ("Will you leave Instagram for another platform?", False),
    ("I'm not leaving Instagram, the backlash is overblown", False),
    ("you should all move to Flickr", False),
    ("This will be my last tweet", True),
    ("See you on Hive!", True),
    ("Welp it happened, moving to HIVE", True),
    ("Deleting this app !", True),
    ("I'm out. Moving to Flickr", True),
    ("If they sell my photos, I'm out", True),
    ("I'm considering deleting my profile", True),
    ("Leaving Instagram is the new moving to Canada", False),
]


@pytest.mark.parametrize(("sentence", "expected"), CHURN_SENTENCES)
def test_default_churn_patterns_on_hand_labelled_sentences(sentence: str, expected: bool) -> None:
    scorer = Scorer(ScorerSpec(churn_patterns=tuple(DEFAULT_CHURN_PATTERNS), platforms=("Instagram",)))
    assert scorer.is_churn(sentence) is expected


def test_churn_patterns_use_each_configured_platform() -> None:
    scorer = Scorer(ScorerSpec(churn_patterns=tuple(DEFAULT_CHURN_PATTERNS), platforms=("Instagram", "X")))
    assert scorer.is_churn("quitting X for good") and scorer.is_churn("Deleting my Instagram account")
    assert not Scorer(ScorerSpec(churn_patterns=tuple(DEFAULT_CHURN_PATTERNS), platforms=("Instagram",))).is_churn(
        "quitting X for good"
    )


def test_aspect_keywords_with_wildcards_match_whole_words() -> None:
    ads = compile_aspect(["ad", "ads", "advertis*"])
    assert ads.search("They will show an AD") and ads.search("advertisers love it") and ads.search("#ads")
    assert not ads.search("I already read it") and not ads.search("bad terms")
    photos = compile_aspect(["photo*", "sell*"])
    assert photos.search("my Photographs") and photos.search("selling") and not photos.search("upsell")


def test_language_tags_are_reduced_to_their_primary_subtag() -> None:
    assert primary_language("en-US") == "en" and primary_language("PT_br") == "pt"
    assert primary_language(None) is None and primary_language("und") is None and primary_language(" ") is None


# ---- the `score` verb on a real store ---------------------------------------------------------------

START = datetime(2012, 12, 18, 12, tzinfo=UTC)


def make_post(number: int, text: str, **fields: Any) -> Post:
    return Post(
        source="archive", id=f"p{number:05d}", created_at=START + timedelta(minutes=number), text=text, **fields
    )


def workspace(tmp_path: Path, **overrides: Any) -> Workspace:
    document = {**BASE_CONFIG, "database": f"sqlite:///{tmp_path / 'data' / 'test.db'}", **overrides}
    return open_workspace(config=parse_config(document, tmp_path))


def stored_scores(ws: Workspace) -> dict[str, dict[str, Any]]:
    from monitor.pipeline import current_scorer

    return {row["post_id"]: row for chunk in ws.store.iter_event_posts(EVENT, current_scorer(ws)) for row in chunk}


def test_score_skips_languages_and_bots_and_scores_nothing_twice(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    posts = [
        make_post(1, "I love the new terms", lang="en"),
        make_post(2, "I hate the new terms, deleting my Instagram", lang="en-GB"),
        make_post(3, "Je quitte Instagram ce soir, ces conditions sont honteuses", lang="fr"),
        make_post(4, "Je quitte Instagram ce soir, ces conditions sont honteuses et scandaleuses"),  # guessed: fr
        make_post(5, "This is a terrible and awful change to the terms of service"),  # guessed: en
        make_post(6, "I hate the new terms, deleting my Instagram", lang="en", is_bot=True),
        make_post(7, "RT @someone: I hate the new terms, deleting my Instagram", lang="en", is_repost=True),
    ]
    ws.store.add_posts(EVENT, posts)
    first = score(ws, workers=1)
    assert first.scored == 4
    assert first.skipped == {"skipped:language": 2, "skipped:bot": 1}
    assert first.reused == 1  # the retweet has post 2's text once its prefix is removed
    rows = stored_scores(ws)
    assert rows["p00004"]["status"] == "skipped:language" and rows["p00004"]["scored_lang"] == "fr"
    assert rows["p00005"]["status"] == "scored" and rows["p00005"]["scored_lang"] == "en"
    assert rows["p00006"]["status"] == "skipped:bot" and rows["p00006"]["compound"] is None
    assert rows["p00002"]["churn"] is True and rows["p00001"]["churn"] is False
    assert rows["p00007"]["compound"] == rows["p00002"]["compound"] < 0
    assert ws.store.scored_counts(EVENT, first.scorer) == {
        "scored": 4,
        "skipped:language": 2,
        "skipped:bot": 1,
        "unscored": 0,
    }
    second = score(ws, workers=1)
    assert (second.scored, second.total, second.scorer) == (0, 0, first.scorer)
    ws.store.add_posts(EVENT, [make_post(8, "Great news, they reverted it")])
    third = score(ws, workers=1)
    assert (third.scored, third.total) == (1, 1)
    ws.close()


def test_changing_the_lexicon_rescores_on_the_next_score(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    ws.store.add_posts(EVENT, [make_post(1, "I will boycott this app", lang="en"), make_post(2, "nice", lang="en")])
    before = score(ws, workers=1)
    compound_before = stored_scores(ws)["p00001"]["compound"]
    ws.close()
    ws = workspace(tmp_path, scoring={"lexicon": {"boycott": -3.5}})
    after = score(ws, workers=1)
    assert after.scorer != before.scorer and after.scored == 2
    assert stored_scores(ws)["p00001"]["compound"] < compound_before
    assert score(ws, workers=1).scored == 0
    ws.close()


def test_bots_are_scored_when_the_config_includes_them(tmp_path: Path) -> None:
    ws = workspace(tmp_path, sources={"mastodon": {"include_bots": True}})
    ws.store.add_posts(EVENT, [make_post(1, "I hate this", lang="en", is_bot=True)])
    assert score(ws, workers=1).scored == 1
    ws.close()


def test_small_chunks_cover_every_post_once(tmp_path: Path) -> None:
    ws = workspace(tmp_path, scoring={"chunk_size": 100})
    texts = generated_texts(450, seed=3)
    ws.store.add_posts(EVENT, [make_post(n, text, lang="en") for n, text in enumerate(texts)])
    result = score(ws, workers=1)
    assert result.total == 450 and result.scored == 450
    assert result.reused == 450 - len(set(texts))
    assert ws.store.scored_counts(EVENT, result.scorer) == {"scored": 450, "unscored": 0}
    ws.close()


def scored_with_one_and_two_workers(
    folder: Path, texts: list[str], chunk_size: int
) -> list[tuple[Any, dict[Any, tuple[Any, ...]]]]:
    """Score the same posts in two stores, with 1 and with 2 worker processes: (outcome, stored scores) each."""
    posts = [make_post(n, text, lang="en") for n, text in enumerate(texts)]
    results = []
    for workers in (1, 2):
        ws = workspace(folder / f"workers-{workers}", scoring={"chunk_size": chunk_size})
        ws.store.add_posts(EVENT, posts)
        outcome = score(ws, workers=workers)
        scores = {
            key: (row["compound"], row["neg"], row["pos"], row["churn"]) for key, row in stored_scores(ws).items()
        }
        results.append((outcome, scores))
        ws.close()
    return results


def test_worker_processes_give_the_same_scores_as_one_process(tmp_path: Path) -> None:
    (one, one_scores), (two, two_scores) = scored_with_one_and_two_workers(
        tmp_path, generated_texts(2600, seed=11), 3000
    )
    assert (one.workers, one.scored, two.workers, two.scored) == (1, 2600, 2, 2600)
    assert one_scores == two_scores


def test_score_command_prints_a_one_line_summary(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config()
    ws = open_workspace(config)
    ws.store.add_posts(EVENT, [make_post(1, "I love it", lang="en"), make_post(2, "J'adore", lang="fr")])
    ws.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "score", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("scored 1, skipped 1 (language 1), identical texts reused 0 — scorer vader-")


# ---- the fast paths: analyzer parity on hard texts, chunks in flight, the bulk score writer ------

HARD_TOKENS = [
    "no", "No", "NO", "not", "isn't", "don't", "never", "least", "at least", "very least", "kind of", "sort of",
    "but", "BUT", "without doubt", "never so", "the shit", "yeah right", "kiss of death", "uber", "friggin",
    "to die for", "bad ass", "the bomb", "bus stop", "beating heart", "just enough", "right", "shit", "die",
    "GREAT", "Great!", "great!!", "great???", "good.", "(good)", "'bad'", ":)", ":-(", ":D", "<3", "lol", "LOL",
    "😠", "😍x", "x😍", "😂😂", "café", "naïve", "good😍", "nor", "or", "extremely", "barely", "...", "!", "?",
]  # fmt: skip


def found(gate: GatedSearch, text: str) -> bool:
    """Whether a gated search finds a pattern in the text: only the patterns the gate lets through are searched."""
    return any(pattern.search(text) for pattern in gate.possible(text))


def hard_texts(count: int, seed: int = 5) -> list[str]:
    """Texts mixing VADER's special rules: negations, "no", "least", boosters, idioms, caps, "but", emoji."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        tokens = rng.choices(WORDS + HARD_TOKENS, k=rng.randint(1, 30))
        text = " ".join(tokens)
        texts.append(text.upper() if rng.random() < 0.05 else text)
    return texts


def test_fast_analyzer_gives_vaders_exact_scores_on_hard_texts() -> None:
    from monitor.scoring import fast_analyzer_class

    fast, reference = fast_analyzer_class()(), SentimentIntensityAnalyzer()
    texts = hard_texts(3000) + ["", "   ", "😠", "but", "no no no", "THE SHIT", "at least not bad", " kind of "]
    for text in texts:
        assert fast.polarity_scores(text) == reference.polarity_scores(text), text


def test_fast_analyzer_describes_emoji_exactly_as_vader_does() -> None:
    from monitor.scoring import fast_analyzer_class

    reference = SentimentIntensityAnalyzer()
    emoji = sorted(key for key in reference.emojis if len(key) == 1)
    rng = random.Random(8)
    pieces = [*rng.sample(emoji, 60), "👍🏽", "❤️", "🏳️‍🌈", "’", "é", "—", "…", " ", "  ", "good", "bad", "!", "x"]
    texts = ["".join(rng.choices(pieces, k=rng.randint(1, 12))) for _ in range(2000)]
    texts += ["😍good", "good😍", "good 😍", "😍😍 😍", " 😠 ", "café 😂", "😂café", "naïve", "“quoted”"]
    fast = fast_analyzer_class()()
    assert sum(any(character in reference.emojis for character in text) for text in texts) > 1000
    for text in texts:
        assert fast.polarity_scores(text) == reference.polarity_scores(text), text


def test_chunks_in_flight_on_workers_reuse_each_others_texts(tmp_path: Path) -> None:
    rng = random.Random(2)
    originals = generated_texts(4500, seed=13)
    texts = [
        rng.choice(originals[max(0, n - 300) : n + 1]) if rng.random() < 0.4 else originals[n] for n in range(4500)
    ]
    (one, one_scores), (two, two_scores) = scored_with_one_and_two_workers(tmp_path, texts, 2200)
    for outcome in (one, two):
        assert (outcome.total, outcome.scored, outcome.reused) == (4500, 4500, 4500 - len(set(texts)))
    assert one_scores == two_scores


def test_bulk_score_writes_keep_the_first_score_and_read_back_unchanged(store: Any) -> None:
    store.add_posts(EVENT, [make_post(1, "I love it"), make_post(2, "I hate it")])
    first = {"source": "archive", "post_id": "p00001", "scorer": "k", "status": "scored", "lang": "en"}
    first |= {"neg": 0.0, "neu": 0.3, "pos": 0.7, "compound": 0.6369, "churn": False, "aspects": "ads,photos"}
    store.add_scores([first])
    store.add_scores([first | {"compound": -0.5}, {"source": "archive", "post_id": "p00002", "scorer": "k", "status": "skipped:language", "lang": "fr"}])  # fmt: skip
    assert [post_id for chunk in store.iter_unscored("k") for _, post_id, *_ in chunk] == []
    assert [post_id for chunk in store.iter_unscored("other") for _, post_id, *_ in chunk] == ["p00001", "p00002"]
    assert next(store.iter_unscored("other"))[0] == ("archive", "p00001", "I love it", None, False)
    rows = {row["post_id"]: row for chunk in store.iter_event_posts(EVENT, "k") for row in chunk}
    values = ("status", "neg", "neu", "pos", "compound", "churn", "aspects", "scored_lang")
    assert [rows["p00001"][name] for name in values] == ["scored", 0.0, 0.3, 0.7, 0.6369, False, "ads,photos", "en"]
    assert [rows["p00002"][name] for name in values] == ["skipped:language", *[None] * 6, "fr"]
    assert store.scored_counts(EVENT, "k") == {"scored": 1, "skipped:language": 1, "unscored": 0}


def test_every_letter_ignorecase_takes_for_an_ascii_one_is_spelt_as_it_before_gating() -> None:
    lookalikes = {
        character: letter
        for character in map(chr, range(0x80, 0x110000))
        if re.fullmatch("[a-z]", character, re.IGNORECASE) and not 0xD800 <= ord(character) <= 0xDFFF
        for letter in "abcdefghijklmnopqrstuvwxyz"
        if re.fullmatch(letter, character, re.IGNORECASE)
    }
    assert lookalikes == {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
    assert "".join(lookalikes).translate(_ASCII_LOOKALIKES) == "".join(lookalikes.values())


def test_gated_churn_and_aspect_search_agree_with_the_plain_regexes() -> None:
    spec = ScorerSpec(
        churn_patterns=tuple(DEFAULT_CHURN_PATTERNS),
        platforms=("Instagram", "X"),
        aspects={"ads": ("ad", "ads", "advertis*"), "photos": ("photo*", "pics", "sell*")},
    )
    scorer = Scorer(spec)
    churn_words = ["quit", "Deleting", "my", "account", "INSTAGRAM", "#deleteInstagram", "moving", "to", "twitter"]
    churn_words += ["I'm", "I", "leaving", "out", "app", "this", ",", "see", "you", "on", "last", "tweet"]
    churn_words += [
        "not",
        "never",
        "using",
        "again",
        "bye",
        "done",
        "with",
        "ads",
        "Advertising",
        "photos",
        "İnstagram",
        "ınstagram",  # the letters IGNORECASE takes for ASCII ones: gated like ASCII, never missed
        "leavıng",
        "\u212aeep",
        "ſee",
        "🙄",
    ]
    rng = random.Random(9)
    texts = [" ".join(rng.choices(churn_words + WORDS, k=rng.randint(2, 12))) for _ in range(3000)]
    texts += [sentence for sentence, _ in CHURN_SENTENCES] + hard_texts(500)
    gate = scorer.churn_detector.gate
    plain = re.compile("|".join(f"(?:{part})" for part in churn_parts(spec.churn_patterns, spec.platforms)), re.I | re.M)
    assert sum(found(gate, text) for text in texts) > 50  # enough matches to compare on
    for text in texts:
        assert found(gate, text) == (plain.search(text) is not None), text
        assert scorer.aspects_of(text) == [name for name, regex in scorer.aspect_patterns if regex.search(text)], text


def test_the_one_pass_gate_lets_through_exactly_the_patterns_whose_words_are_all_in_the_text() -> None:
    scorer = Scorer(
        ScorerSpec(
            churn_patterns=tuple(DEFAULT_CHURN_PATTERNS),
            platforms=("Instagram", "X", "Post.News"),
            aspects={"ads": ("ad", "ads", "advertis*"), "photos": ("photo*", "pics", "sell*"), "none": ()},
        )
    )
    gates = [scorer.churn_detector.gate, scorer.aspect_gate]
    words = sorted({word for gate in gates for needed, _ in gate.gates for choice in needed for word in choice})
    pieces = [*words, *(word.upper() for word in words), "İ", "ı", "ſ", "\u212a", "#", " ", "'", "’", ".", "é", "😠"]
    rng = random.Random(11)
    texts = ["", "x", "I", "İ"] + ["".join(rng.choices(pieces + list("abcdefghijklmnopqrstuvwxyz"), k=rng.randint(1, 40))) for _ in range(5000)]  # fmt: skip
    for gate in gates:
        for text in texts:
            lowered = text.translate(_ASCII_LOOKALIKES).lower()
            expected = [pattern for needed, pattern in gate.gates if all(any(word in lowered for word in choice) for choice in needed)]  # fmt: skip
            assert gate.possible(text) == expected, text
    assert sum(bool(gate.possible(text)) for text in texts for gate in gates) > 2000  # enough let through to compare


def test_urls_are_removed_exactly_as_the_url_regex_removes_them() -> None:
    url = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
    pieces = ["http", "HTTP", "hTtPs", "httpſ", "://", "www.", "WWW.", "wWw", "w.", "ww", "/", ":", "s", "tp", "h", "x"]
    pieces += [" ", "\n", "\u00a0", "\u2028", "\u3000", "é", "ſ", "İ", "\u212a", "ß", "😠", "’"]
    rng = random.Random(12)
    texts = ["", "http", "www.", "https://", "http://x", "İ http://x y"]
    texts += ["".join(rng.choices(pieces, k=rng.randint(1, 14))) for _ in range(50_000)]
    assert sum(url.search(text) is not None for text in texts) > 10_000
    for text in texts:
        assert without_urls(text) == url.sub("", text), text
