"""Text → scores: VADER with a domain lexicon, churn intent, aspects and language filtering.

A `ScorerSpec` is everything that decides a post's score; its `key()` is stored with each score, so
changing the config rescores and nothing else is ever scored twice. Pure: no database, no printing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from monitor.language import IDENTIFIER, UNDETERMINED, guess_language
from monitor.posts import PLACEHOLDER_TEXTS, SCORE_ROW_FIELDS, ScoreRow, UnscoredPost

if TYPE_CHECKING:
    from monitor.churn import ChurnDetector

NEGATIVE_AT = -0.05  # VADER's own thresholds for a negative / positive text
POSITIVE_AT = 0.05
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_RETWEET_PREFIX = re.compile(r"^\s*RT\s+@\w+:?\s*")
_LANG_UNKNOWN = {"", "und", "zxx", "mul", "xx"}


def preprocess(text: str) -> str:
    """What makes social text fair to VADER: URLs and a leading "RT @user:" removed (sources decode entities)."""
    if "RT" in text:  # a substring search first: the regex costs a microsecond on every text
        text = _RETWEET_PREFIX.sub("", text, count=1)
    if "http" in text or "www." in text:
        text = without_urls(text)
    return text


def without_urls(text: str) -> str:
    """`_URL.sub("", text)`, with the regex tried only where "http" or "www." starts, in any case.

    re tries an IGNORECASE pattern at every position (3.5 µs on a tweet); found with str.find in the
    lower-cased text, the places a URL can start cost a third of that. Sound because no character but
    the ASCII letters matches h, t, p or w under IGNORECASE, and only İ lower-cases to two characters
    (a text with it is searched as before, so positions in the lower-cased text are the text's).
    """
    lowered = text.lower()
    if len(lowered) != len(text):
        return _URL.sub("", text)
    kept, position = [], 0
    start = _url_start(lowered, 0)
    while start >= 0:
        match = _URL.match(text, start)
        if match is None:
            start = _url_start(lowered, start + 1)
            continue
        kept.append(text[position:start])
        position = match.end()
        start = _url_start(lowered, position)
    return "".join(kept) + text[position:] if kept else text


def _url_start(lowered: str, position: int) -> int:
    """Where "http" or "www." is next found from position on, or -1."""
    http, www = lowered.find("http", position), lowered.find("www.", position)
    return http if www < 0 or 0 <= http < www else www


def primary_language(tag: str | None) -> str | None:
    """'en-US' → 'en'; a missing or 'undetermined' tag → None (guess it)."""
    if tag is None:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return None if primary in _LANG_UNKNOWN else primary


def vader_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vaderSentiment")
    except PackageNotFoundError:
        return "unknown"


def lexicon_entries(lexicon: dict[str, float]) -> dict[str, float]:
    """Config lexicon → VADER lexicon keys. VADER strips a token's punctuation, so `#boycott` is looked
    up as `boycott`: an explicit `#tag` entry is stored under its word and wins over the plain word."""
    entries = {word.lower(): value for word, value in lexicon.items() if not word.startswith("#")}
    entries |= {word.lstrip("#").lower(): value for word, value in lexicon.items() if word.startswith("#")}
    return entries


def compile_aspect(keywords: Iterable[str]) -> re.Pattern[str]:
    """Keywords with `*` wildcards → one case-insensitive word-boundary regex (`advertis*` matches advertising)."""
    parts = [re.escape(word.strip()).replace(r"\*", r"\w*") for word in keywords if word.strip()]
    return re.compile(r"(?<!\w)(?:" + "|".join(parts or ["(?!)"]) + r")(?!\w)", re.IGNORECASE)


def churn_parts(patterns: Sequence[str], platforms: Iterable[str]) -> list[str]:
    """The churn patterns filled in once per platform ({platform} → the lower-cased, escaped name), sorted."""
    filled = {p.replace("{platform}", re.escape(name.lower())) for p in patterns for name in platforms}
    filled |= {p for p in patterns if "{platform}" not in p}
    return sorted(filled)


class GatedSearch:
    """Whether any of some regexes finds a match, skipping each one that an ASCII text cannot match.

    Python's regex engine tries a pattern at every position of a text, which made the churn patterns
    cost half as much as VADER itself. A pattern needs certain literal words ("account", "with", one
    of "bye"/"goodbye"/"farewell", …): when a text lacks one of them the pattern cannot match and is
    not run. The words are looked for in the text lower-cased, after the four non-ASCII letters that
    IGNORECASE takes for ASCII ones (İ ı ſ K) are spelt as those: every match's words are still there.

    One Aho–Corasick pass finds every word of every pattern at once (one `in` test per word cost twice
    as much). Each choice of words is a bit; a word found sets the bits of the choices it is in, and a
    pattern is possible when all of its choices' bits are set. Single letters are looked for with `in`:
    the automaton would report each of their many occurrences.
    """

    def __init__(self, patterns: Sequence[re.Pattern[str]]) -> None:
        self.gates = [(_worth_looking_for(required_strings(pattern)), pattern) for pattern in patterns]
        bits: dict[str, int] = {}  # word → the bits of the choices it satisfies
        self._masks: list[tuple[int, re.Pattern[str]]] = []  # pattern → the bits of all its choices
        choices = 0
        for needed, pattern in self.gates:
            mask = 0
            for choice in needed:
                bit, choices = 1 << choices, choices + 1
                mask |= bit
                for word in choice:
                    bits[word] = bits.get(word, 0) | bit
            self._masks.append((mask, pattern))
        self._letters = [(word, bit) for word, bit in sorted(bits.items()) if len(word) == 1]
        self._words = _automaton({word: bit for word, bit in bits.items() if len(word) > 1})

    def possible(self, text: str, lowered: str | None = None) -> list[re.Pattern[str]]:
        """The patterns whose words are all in the text: only they can match it, or any part of it.

        `lowered`: the text lower-cased, when the caller has it already.
        """
        lowered = text.lower() if lowered is None else lowered
        if not text.isascii() and _LOOKALIKE.search(text):  # rare: str.translate costs 5 µs a text
            lowered = text.translate(_ASCII_LOOKALIKES).lower()
        found = 0
        if self._words is not None:
            for _, bits in self._words.iter(lowered):
                found |= bits
        for letter, bits in self._letters:
            if letter in lowered:
                found |= bits
        return [pattern for mask, pattern in self._masks if found & mask == mask]


def _worth_looking_for(needed: list[frozenset[str]]) -> list[frozenset[str]]:
    """A pattern's choices less those holding a two-letter word, unless that leaves none.

    "on", "it", "in", "to" are in nearly every text, several times over (in "twitter", "with", "don't"):
    each occurrence is a step of the one pass, and a choice with one of them rarely keeps a pattern out.
    """
    return [choice for choice in needed if all(len(word) != 2 for word in choice)] or needed


def _automaton(values: dict[str, int]) -> Any:
    """An Aho–Corasick automaton of words (None without any): iter(text) yields (end, value) for every occurrence."""
    if not values:
        return None
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for word, value in values.items():
        automaton.add_word(word, value)
    automaton.make_automaton()
    return automaton


# Every non-ASCII character that re's IGNORECASE matches with an ASCII letter (a test checks all of Unicode).
_ASCII_LOOKALIKES = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
_LOOKALIKE = re.compile("[\u0130\u0131\u017f\u212a]")


def required_strings(pattern: re.Pattern[str]) -> list[frozenset[str]]:
    """What every match contains: for each set, one of its strings (lower-cased ASCII).

    Reads the pattern with the stdlib's own (private) regex parser, so the gate sees it exactly as re does.
    Should a future Python change that parser, the answer is "nothing required": every pattern then
    simply runs on every text — slower, never wrong.
    """
    try:
        import re._parser as parser

        return _requirements(list(parser.parse(pattern.pattern, pattern.flags)))
    except (ImportError, AttributeError, TypeError, ValueError, IndexError):
        return []


def _requirements(items: list[tuple[Any, Any]]) -> list[frozenset[str]]:
    """For a parsed sequence: its literal runs, and the requirements of the parts a match cannot skip."""
    from re._constants import ATOMIC_GROUP, BRANCH, LITERAL, MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT, SUBPATTERN

    needed: list[frozenset[str]] = []
    run: list[str] = []
    for op, value in [*items, (None, None)]:  # the sentinel closes the last literal run
        if op is LITERAL:
            run.append(chr(value))
            continue
        if run:
            needed.append(frozenset(["".join(run).lower()]))
            run = []
        if op is SUBPATTERN:
            needed += _requirements(list(value[-1]))
        elif op is ATOMIC_GROUP:
            needed += _requirements(list(value))
        elif op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT) and value[0] >= 1:
            needed += _requirements(list(value[2]))
        elif op is BRANCH:
            choices = [_most_selective(_requirements(list(branch))) for branch in value[1]]
            if all(choices):
                needed.append(frozenset().union(*[choice for choice in choices if choice]))
    return [choice for choice in needed if choice and all(word and word.isascii() for word in choice)]


def _most_selective(needed: list[frozenset[str]]) -> frozenset[str] | None:
    return max(needed, key=lambda choice: (min(map(len, choice)), -len(choice)), default=None)


@dataclass(frozen=True)
class ScorerSpec:
    """Everything that decides a score; picklable, so each worker process builds its own analyzer from it."""

    lexicon: dict[str, float] = field(default_factory=dict)
    churn_patterns: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()  # churn patterns apply for every configured event's platform
    aspects: dict[str, tuple[str, ...]] = field(default_factory=dict)  # merged over events, by name
    languages: tuple[str, ...] = ("en",)
    include_bots: bool = False
    vader: str = field(default_factory=vader_version)

    def key(self) -> str:
        """The scorer version key stored with each score: vader version + hash of the rest."""
        document = {
            "lexicon": sorted(lexicon_entries(self.lexicon).items()),
            "churn": sorted(self.churn_patterns),
            "platforms": sorted(name.lower() for name in self.platforms),
            "aspects": sorted((name, sorted(words)) for name, words in self.aspects.items()),
            "languages": sorted(self.languages),
            "include_bots": self.include_bots,
            "language_identifier": IDENTIFIER,
            "placeholders": sorted(PLACEHOLDER_TEXTS),
        }
        digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode("utf-8")).hexdigest()
        return f"vader-{self.vader}:{digest[:16]}"


def spec_from_config(config: Any) -> ScorerSpec:
    """The scorer the config describes (config: monitor.config.Config)."""
    aspects: dict[str, list[str]] = {}
    for event in config.events:
        for name, words in event.aspects.items():
            aspects.setdefault(name, []).extend(word for word in words if word not in aspects.get(name, []))
    return ScorerSpec(
        lexicon=dict(config.scoring.lexicon),
        churn_patterns=tuple(config.scoring.churn_patterns),
        platforms=tuple(sorted({event.platform for event in config.events})),
        aspects={name: tuple(words) for name, words in aspects.items()},
        languages=tuple(language.lower() for language in config.scoring.languages),
        include_bots=config.sources.mastodon.include_bots,
    )


# What one text scores: (lang, scored, neg, neu, pos, compound, churn, aspects) — its language (tag or guess)
# and, when in a scored language, the rest (else None); aspects are comma-separated names, "" when none.
# A plain tuple: worker processes send hundreds of thousands back, and a NamedTuple took 1.3 µs more a text
# to build, pickle and unpickle (its class is called again for every one).
TextScore = tuple[str | None, bool, float | None, float | None, float | None, float | None, bool | None, str | None]
_NOT_SCORED = (None, None, None, None, None, None)


@cache
def fast_analyzer_class() -> type:
    """vaderSentiment's analyzer with identical results, about three times as fast on post-length texts.

    VADER 3.3.2 lower-cases the whole word list again for every lexicon word, calls a method per word
    and builds the emoji-free text one character at a time. `polarity_values` here replaces emoji only in
    a text that has a non-ASCII character, lower-cases the words once and runs the same rules in one loop
    (`polarity_scores` is its dict).
    The parity tests compare every field.
    """
    from vaderSentiment import vaderSentiment as vader
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, allcap_differential

    # the rules' tables, kept in module containers so the hot loop reads them without an import per call
    _BOOSTERS.update(vader.BOOSTER_DICT)
    _SPECIAL_CASES.update(vader.SPECIAL_CASES)
    _NEGATIONS.update(vader.NEGATE)
    _FACTORS.update(negation=vader.N_SCALAR, caps=vader.C_INCR)
    phrases = [phrase.split() for phrase in [*vader.SPECIAL_CASES, *vader.BOOSTER_DICT] if " " in phrase]
    _IDIOM_WORDS.update(max(words, key=len) for words in phrases)

    class FastSentimentIntensityAnalyzer(SentimentIntensityAnalyzer):
        def __init__(self) -> None:
            super().__init__()
            # the loop in VADER looks at one character at a time, so only one-character emoji are ever replaced
            self.emoji_characters = frozenset(emoji for emoji in self.emojis if len(emoji) == 1)

        def polarity_scores(self, text: str) -> dict[str, float]:
            return dict(zip(POLARITY_FIELDS, self.polarity_values(text), strict=True))

        def polarity_values(self, text: str) -> tuple[float, float, float, float]:
            """polarity_scores' values in POLARITY_FIELDS order, without the dict."""
            if not text.isascii():  # no emoji is ASCII
                text = _describe_emoji(text, self.emojis, self.emoji_characters)
            text = text.strip()
            # SentiText._strip_punc_if_word, inline: strip punctuation unless that leaves two characters or fewer
            words = [token if len(stripped := token.strip(_PUNCTUATION)) <= 2 else stripped for token in text.split()]
            lower = list(map(str.lower, words))
            sentiments = _sentiments(self.lexicon, words, lower, allcap_differential(words))
            if "but" in lower:
                sentiments = self._but_check(words, sentiments)
            return _score_valence(sentiments, text, self._punctuation_emphasis)

    return FastSentimentIntensityAnalyzer


# ---- VADER 3.3.2's rules on a once-lowered word list (vaderSentiment.SentimentIntensityAnalyzer) ------


def _describe_emoji(text: str, emojis: dict[str, str], characters: frozenset[str]) -> str:
    """polarity_values' first step: each emoji replaced by its description, apart from the character before.

    VADER adds the space only where there is none already; a space too many changes nothing here, because
    the text is only ever split on whitespace (and its "!" and "?" counted), so every emoji gets one.
    """
    found = characters.intersection(_ASCII_RUNS.sub("", text))  # no emoji is ASCII: only the rest is looked at
    if not found:  # most non-ASCII texts have only accents, quotes or dashes: VADER's loop would copy them
        return text
    return _emoji_pattern("".join(sorted(found))).sub(lambda match: " " + emojis[match.group()], text)


_ASCII_RUNS = re.compile(r"[\x00-\x7f]+")  # removed in one pass, they leave a tweet's few other characters


@lru_cache(maxsize=4096)
def _emoji_pattern(emoji: str) -> re.Pattern[str]:
    """A character class of these emoji (one class of all 1,212 would be searched one by one, at every character)."""
    return re.compile("[" + "".join(map(re.escape, emoji)) + "]")


POLARITY_FIELDS = ("neg", "neu", "pos", "compound")


def _score_valence(
    sentiments: list[float], text: str, emphasis_of: Callable[[str], float]
) -> tuple[float, float, float, float]:
    """SentimentIntensityAnalyzer.score_valence, rounded as it rounds, in POLARITY_FIELDS order.

    Most words are outside the lexicon (valence 0): they add nothing to the sums and are only counted as
    neutral, so the sums run over the others alone, in the same order (the same floats), and a text
    without any lexicon word is neutral without further arithmetic.
    """
    if not sentiments:
        return 0.0, 0.0, 0.0, 0.0
    valences = [valence for valence in sentiments if valence]
    if not valences:
        return 0.0, 1.0, 0.0, 0.0
    total = float(sum(valences))
    emphasis = emphasis_of(text)  # the analyzer's own "!" and "?" emphasis
    if total > 0:
        total += emphasis
    elif total < 0:
        total -= emphasis
    pos_sum, neg_sum = 0.0, 0.0
    for valence in valences:
        if valence > 0:
            pos_sum += float(valence) + 1  # + 1 and - 1: VADER's compensation for the neutral words' count
        else:
            neg_sum += float(valence) - 1
    if pos_sum > math.fabs(neg_sum):
        pos_sum += emphasis
    elif pos_sum < math.fabs(neg_sum):
        neg_sum -= emphasis
    weight = pos_sum + math.fabs(neg_sum) + (len(sentiments) - len(valences))
    neu = math.fabs((len(sentiments) - len(valences)) / weight)
    compound = max(-1.0, min(1.0, total / math.sqrt(total * total + 15)))  # vaderSentiment.normalize
    neg, pos = math.fabs(neg_sum / weight), math.fabs(pos_sum / weight)
    return round(neg, 3), round(neu, 3), round(pos, 3), round(compound, 4)


def _sentiments(lexicon: dict[str, float], words: list[str], lower: list[str], cap_diff: bool) -> list[float]:
    """polarity_scores' loop and sentiment_valence: one valence per word (0 for words outside the lexicon).

    Only the few words in the lexicon (and not boosters) are looked at one by one; the rest stay 0.
    """
    sentiments: list[float] = [0] * len(lower)
    last = len(words) - 1
    for i in [i for i, word in enumerate(lower) if word in lexicon and word not in _BOOSTERS]:
        if lower[i] != "kind" or i == last or lower[i + 1] != "of":
            sentiments[i] = _lexicon_valence(lexicon, words, lower, i, cap_diff)
    return sentiments


def _lexicon_valence(lexicon: dict[str, float], words: list[str], lower: list[str], i: int, cap_diff: bool) -> float:
    """sentiment_valence for a word in the lexicon: "no", caps, boosters, negation, idioms, "least"."""
    word = lower[i]
    valence = lexicon[word]
    if word == "no" and i != len(words) - 1 and lower[i + 1] in lexicon:
        valence = 0.0
    if (
        (i > 0 and lower[i - 1] == "no")
        or (i > 1 and lower[i - 2] == "no")
        or (i > 2 and lower[i - 3] == "no" and lower[i - 1] in ("or", "nor"))
    ):
        valence = lexicon[word] * _FACTORS["negation"]
    if words[i].isupper() and cap_diff:
        if valence > 0:
            valence += _FACTORS["caps"]
        else:
            valence -= _FACTORS["caps"]
    for start_i in range(3):
        before = i - (start_i + 1)
        if i > start_i and lower[before] not in lexicon:
            booster = lower[before] in _BOOSTERS  # rarely: the call is saved for the other words
            scalar = _booster_shift(words[before], lower[before], valence, cap_diff) if booster else 0.0
            if start_i == 1 and scalar != 0:
                scalar = scalar * 0.95
            if start_i == 2 and scalar != 0:
                scalar = scalar * 0.9
            valence = valence + scalar
            valence = _negation_check(valence, lower, start_i, i)
            if start_i == 2:
                valence = _special_idioms_check(valence, lower, i)
    return _least_check(valence, lexicon, lower, i)


def _booster_shift(word: str, lowered: str, valence: float, cap_diff: bool) -> float:
    """vaderSentiment.scalar_inc_dec for a word that is a booster or dampener: how much it shifts the valence."""
    scalar = _BOOSTERS[lowered]
    if valence < 0:
        scalar *= -1
    if word.isupper() and cap_diff:
        if valence > 0:
            scalar += _FACTORS["caps"]
        else:
            scalar -= _FACTORS["caps"]
    return scalar


def _least_check(valence: float, lexicon: dict[str, float], lower: list[str], i: int) -> float:
    if i > 1 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
        if lower[i - 2] != "at" and lower[i - 2] != "very":
            valence = valence * _FACTORS["negation"]
    elif i > 0 and lower[i - 1] not in lexicon and lower[i - 1] == "least":
        valence = valence * _FACTORS["negation"]
    return valence


def _negated(word: str) -> bool:
    """vaderSentiment.negated([word]) for one lower-cased word."""
    return word in _NEGATIONS or "n't" in word


def _negation_check(valence: float, lower: list[str], start_i: int, i: int) -> float:
    if start_i == 0 and _negated(lower[i - 1]):
        valence = valence * _FACTORS["negation"]
    if start_i == 1:
        if lower[i - 2] == "never" and lower[i - 1] in ("so", "this"):
            valence = valence * 1.25
        elif lower[i - 2] == "without" and lower[i - 1] == "doubt":
            pass
        elif _negated(lower[i - 2]):
            valence = valence * _FACTORS["negation"]
    if start_i == 2:
        if (lower[i - 3] == "never" and lower[i - 2] in ("so", "this")) or lower[i - 1] in ("so", "this"):
            valence = valence * 1.25
        elif lower[i - 3] == "without" and "doubt" in (lower[i - 2], lower[i - 1]):
            pass
        elif _negated(lower[i - 3]):
            valence = valence * _FACTORS["negation"]
    return valence


def _special_idioms_check(valence: float, lower: list[str], i: int) -> float:
    if _IDIOM_WORDS.isdisjoint(lower[i - 3 : i + 3]):  # i > 2 here; no idiom can be among these words
        return valence
    onezero, twoone = f"{lower[i - 1]} {lower[i]}", f"{lower[i - 2]} {lower[i - 1]}"
    twoonezero, threetwo = f"{lower[i - 2]} {lower[i - 1]} {lower[i]}", f"{lower[i - 3]} {lower[i - 2]}"
    threetwoone = f"{lower[i - 3]} {lower[i - 2]} {lower[i - 1]}"
    for sequence in (onezero, twoonezero, twoone, threetwoone, threetwo):
        if sequence in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[sequence]
            break
    if len(lower) - 1 > i and f"{lower[i]} {lower[i + 1]}" in _SPECIAL_CASES:
        valence = _SPECIAL_CASES[f"{lower[i]} {lower[i + 1]}"]
    if len(lower) - 1 > i + 1 and f"{lower[i]} {lower[i + 1]} {lower[i + 2]}" in _SPECIAL_CASES:
        valence = _SPECIAL_CASES[f"{lower[i]} {lower[i + 1]} {lower[i + 2]}"]
    for n_gram in (threetwoone, threetwo, twoone):
        if n_gram in _BOOSTERS:
            valence = valence + _BOOSTERS[n_gram]
    return valence


_PUNCTUATION = string.punctuation
_BOOSTERS: dict[str, float] = {}
_SPECIAL_CASES: dict[str, float] = {}
_NEGATIONS: set[str] = set()
_FACTORS: dict[str, float] = {}
_IDIOM_WORDS: set[str] = set()  # a word of each idiom and booster phrase: a window without any holds none of them


class Scorer:
    """One VADER analyzer with the domain lexicon, plus the churn and aspect regexes."""

    def __init__(self, spec: ScorerSpec) -> None:
        self.spec = spec
        self.analyzer = fast_analyzer_class()()
        self.analyzer.lexicon.update(lexicon_entries(spec.lexicon))
        self.languages = frozenset(spec.languages)

    @cached_property
    def aspect_patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(name, compile_aspect(words)) for name, words in sorted(self.spec.aspects.items())]

    @cached_property
    def churn_detector(self) -> ChurnDetector:
        from monitor.churn import ChurnDetector

        return ChurnDetector(self.spec.churn_patterns, self.spec.platforms)

    @cached_property
    def aspect_gate(self) -> GatedSearch:
        return GatedSearch([pattern for _, pattern in self.aspect_patterns])

    def polarity(self, text: str) -> dict[str, float]:
        """VADER's neg/neu/pos/compound of a text after our preprocessing."""
        return dict(self.analyzer.polarity_scores(preprocess(text)))

    def is_churn(self, text: str) -> bool:
        return self.churn_detector.found(preprocess(text))

    def aspects_of(self, text: str, lowered: str | None = None) -> list[str]:
        possible = self.aspect_gate.possible(text, lowered)  # one gate for all aspects
        return [name for name, pattern in self.aspect_patterns if pattern in possible and pattern.search(text)]

    def score_text(self, text: str, tag: str | None) -> TextScore:
        """A preprocessed text with its primary language tag → TextScore.

        Without a tag the language is guessed; a text too short or unclear to tell ("und") is scored,
        so only a confident guess of another language excludes a post.
        """
        lowered = text.lower()  # for the language's first look and the word gates
        lang = tag or guess_language(text, lowered)
        if lang not in self.languages and lang != UNDETERMINED:
            return (lang, False, *_NOT_SCORED)
        neg, neu, pos, compound = self.analyzer.polarity_values(text)
        churn = self.churn_detector.found(text, lowered)
        aspects = ",".join(self.aspects_of(text, lowered))
        return (lang, True, neg, neu, pos, compound, churn, aspects)

    def score_many(self, items: Sequence[tuple[str, str | None]]) -> list[TextScore]:
        return [self.score_text(text, tag) for text, tag in items]


# ---- worker processes: one Scorer per process, built once by the pool's initializer ----------

_worker_scorer: Scorer | None = None


def _init_worker(spec: ScorerSpec) -> None:
    global _worker_scorer
    _worker_scorer = Scorer(spec)


def _score_in_worker(items: Sequence[tuple[str, str | None]]) -> list[TextScore]:
    assert _worker_scorer is not None, "worker started without _init_worker"
    return _worker_scorer.score_many(items)


# ---- batches: bots skipped, identical texts scored once, unique texts spread over processes --------

PIECE_SIZE = 1_000  # texts per task sent to a worker: big enough to amortise pickling, small enough to balance
IN_PROCESS_BELOW = 2_000  # fewer unique texts than this are scored in this process: a pool costs more

TextKey = tuple[str, str | None]  # (preprocessed text, primary language tag)
_STATUS = SCORE_ROW_FIELDS.index("status")


@dataclass
class ChunkScores:
    """The score rows of one chunk of posts, and what it took."""

    rows: list[ScoreRow]  # fields: SCORE_ROW_FIELDS
    scored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → posts
    reused: int = 0  # posts whose text was already scored (in this chunk or a recent one)

    @classmethod
    def of_rows(cls, rows: list[ScoreRow]) -> ChunkScores:
        """Score rows made elsewhere (e.g. on a Dask worker), counted by their status."""
        chunk = cls(rows=rows)
        for row in rows:
            if row[_STATUS] == "scored":
                chunk.scored += 1
            else:
                chunk.skipped[row[_STATUS]] = chunk.skipped.get(row[_STATUS], 0) + 1
        return chunk


@dataclass
class _Pending:
    posts: list[UnscoredPost]
    keys: list[TextKey | None]  # None for a post skipped before scoring (a bot, a deleted text)
    todo: list[TextKey]
    known: dict[TextKey, Any]  # a key scored before → its TextScore, or the _Pending still scoring it
    result: Any  # AsyncResult or a ready list
    fresh: dict[TextKey, TextScore] | None = None  # todo's scores, once collected


class BatchScorer:
    """Scores chunks of posts (UNSCORED_POST_FIELDS tuples) with one analyzer per worker process.

    Chunks may be submitted before the previous one is collected (the workers then never wait for
    the database); they must be collected in the order they were submitted.
    """

    def __init__(self, spec: ScorerSpec, workers: int = 1, cache_size: int = 200_000) -> None:
        self.spec = spec
        self.key = spec.key()
        self.workers = max(1, workers)
        self.cache_size = cache_size
        self.cache: dict[TextKey, TextScore] = {}
        self._in_flight: dict[TextKey, _Pending] = {}  # keys sent to workers and not yet collected
        self._local: Scorer | None = None
        self._pool: Any = None

    def submit(self, posts: list[UnscoredPost]) -> _Pending:
        """Start scoring a chunk; texts in the cache, in flight or earlier in the chunk are not sent again."""
        keys = self._keys(posts)
        known: dict[TextKey, Any] = {}
        todo: dict[TextKey, None] = {}
        cache, in_flight = self.cache, self._in_flight
        for key in keys:
            if key is None or key in known or key in todo:
                continue
            found = cache.get(key) or in_flight.get(key)
            if found is None:
                todo[key] = None
            else:
                known[key] = found
        items = list(todo)
        pending = _Pending(posts, keys, items, known, self._start(items))
        in_flight.update(dict.fromkeys(items, pending))
        return pending

    def collect(self, pending: _Pending) -> ChunkScores:
        """Wait for a chunk's texts and turn them into score rows."""
        ready = pending.result if isinstance(pending.result, list) else pending.result.get()
        fresh = pending.fresh = dict(zip(pending.todo, [score for piece in ready for score in piece], strict=True))
        for key in pending.todo:
            del self._in_flight[key]
        scores = self._resolved(pending)
        pending.known = {}  # the chunk before is no longer needed: without this every chunk would stay linked in memory
        result = ChunkScores(rows=[])
        result.reused = sum(1 for key in pending.keys if key is not None) - len(fresh)
        pairs = zip(pending.posts, pending.keys, strict=True)
        result.rows = [self._row(post, None if key is None else scores[key], result) for post, key in pairs]
        if len(self.cache) + len(fresh) > self.cache_size:
            self.cache.clear()  # bounded memory; reposts cluster in time, so a fresh cache soon fills again
        self.cache.update(fresh)
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def _keys(self, posts: list[UnscoredPost]) -> list[TextKey | None]:
        # keyed on the preprocessed text, so a repost ("RT @user: …") reuses its original's score
        skip_bots = not self.spec.include_bots
        return [
            None
            if (skip_bots and is_bot) or text in PLACEHOLDER_TEXTS
            else (preprocess(text), _primary(lang))
            for _, _, text, lang, is_bot in posts
        ]

    def _resolved(self, pending: _Pending) -> dict[TextKey, TextScore]:
        """Every key of a collected chunk → its TextScore (a key another chunk scored comes from that chunk)."""
        scores = dict(pending.fresh or {})
        for key, found in pending.known.items():
            if isinstance(found, _Pending):
                assert found.fresh is not None, "chunks must be collected in the order they were submitted"
                found = found.fresh[key]
            scores[key] = found
        return scores

    def _start(self, items: list[TextKey]) -> Any:
        pieces = [items[start : start + PIECE_SIZE] for start in range(0, len(items), PIECE_SIZE)]
        if self.workers == 1 or len(items) < IN_PROCESS_BELOW:
            if self._local is None:
                self._local = Scorer(self.spec)
            return [self._local.score_many(piece) for piece in pieces]
        return self._get_pool().map_async(_score_in_worker, pieces, chunksize=1)

    def _get_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing

            # spawn, not fork: the parent may hold database connections and a progress-bar thread
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self.workers, initializer=_init_worker, initargs=(self.spec,))
        return self._pool

    def _row(self, post: UnscoredPost, score: TextScore | None, result: ChunkScores) -> ScoreRow:
        """A post's row of SCORE_ROW_FIELDS."""
        source, post_id, text, tag, _ = post
        if score is None or not score[1]:  # scored
            status = _skipped_status(text) if score is None else "skipped:language"
            result.skipped[status] = result.skipped.get(status, 0) + 1
            lang = score[0] if score is not None else primary_language(tag)
            return (source, post_id, self.key, status, lang, None, None, None, None, None, None)
        result.scored += 1
        lang, _, neg, neu, pos, compound, churn, aspects = score
        return (source, post_id, self.key, "scored", lang, neg, neu, pos, compound, churn, aspects)


def _skipped_status(text: str) -> str:
    """Why a post was left out before scoring: a deleted or removed text, or a bot."""
    return "skipped:deleted" if text in PLACEHOLDER_TEXTS else "skipped:bot"


@cache
def _primary(tag: str | None) -> str | None:
    """primary_language, remembered: a store holds only a handful of distinct tags."""
    return primary_language(tag)
