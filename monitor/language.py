"""Which language a post is in, and only when we can tell: an ISO 639 code, or "und" (undetermined).

Scoring leaves out a post only when it is confidently in another language, so every doubt ends in "und".
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

UNDETERMINED = "und"
IDENTIFIER = "cld2-gated-1"  # part of the scorer key: changing the identifier or these rules rescores untagged posts

MIN_WORDS = 2  # one word ("WTF", "Hola", "Moin", "LOL") is written the same in too many languages
MIN_LETTERS = 8  # nor do two tiny words ("ok lol", "oi gente") tell a language apart: at least this many letters
CONFIDENT = 0.5  # CLD2 must call its answer reliable and find it in at least this share of the text
ENGLISH_SHARE = 0.25  # at least two words, and this share of all, English-only: English without asking CLD2
CACHE_SIZE = 16_384  # evidence strings remembered (a few MB): campaigns repeat one text with other tags and links

# Not evidence of a language: links, @mentions and #hashtags (names, not prose); then anything but letters.
_NOT_PROSE = re.compile(r"(?:https?://|www\.)\S+|[@#]\w+", re.IGNORECASE)
_TAGS = re.compile(r"[@#]\w+")  # _NOT_PROSE where no link can start: a third of the cost (no IGNORECASE scan)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")  # letters, with inner apostrophes kept (don't, l'été)
_NOT_LATIN = re.compile(r"[^\sA-Za-z'\u00c0-\u024f\u1e00-\u1eff]")

# Scripts written by one major language: the script alone says which (kana before Han: Japanese mixes both).
_SCRIPT_LANGUAGES = [
    (re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]"), "ja"),
    (re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"), "ko"),
    (re.compile(r"[\u0370-\u03ff\u1f00-\u1fff]"), "el"),
    (re.compile(r"[\u0590-\u05ff]"), "he"),
    (re.compile(r"[\u0e00-\u0e7f]"), "th"),
    (re.compile(r"[\u10a0-\u10ff]"), "ka"),
    (re.compile(r"[\u0530-\u058f]"), "hy"),
    (re.compile(r"[\u0b80-\u0bff]"), "ta"),
    (re.compile(r"[\u0c00-\u0c7f]"), "te"),
    (re.compile(r"[\u0c80-\u0cff]"), "kn"),
    (re.compile(r"[\u0d00-\u0d7f]"), "ml"),
    (re.compile(r"[\u0a80-\u0aff]"), "gu"),
    (re.compile(r"[\u0a00-\u0a7f]"), "pa"),
    (re.compile(r"[\u0d80-\u0dff]"), "si"),
    (re.compile(r"[\u1000-\u109f]"), "my"),
    (re.compile(r"[\u1780-\u17ff]"), "km"),
    (re.compile(r"[\u1200-\u137f]"), "am"),
    (re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"), "zh"),
]
# Scripts several languages share: CLD2 tells which, and when it cannot, the one most posts are in.
_SHARED_SCRIPTS = [
    (re.compile(r"[\u0400-\u04ff]"), "ru"),
    (re.compile(r"[\u0600-\u06ff\u0750-\u077f]"), "ar"),
    (re.compile(r"[\u0900-\u097f]"), "hi"),
    (re.compile(r"[\u0980-\u09ff]"), "bn"),
]
_OLD_CODES = {"iw": "he", "jw": "jv", "in": "id", "ji": "yi"}  # CLD2 still answers with withdrawn ISO codes

# Frequent English words that are not also frequent words of another language written in Latin script
# ("is" is Dutch and Afrikaans, "to" Polish, "for" Danish, "my" Polish, "no" Spanish, "die" German, …).
# Loans other languages use (lol, omg, fuck) count too: the share rule still wants a quarter of the text.
_ENGLISH_TEXT = """
    the and you your you're yours yourself that that's this these those with without have has had having what
    what's which who who's whom whose why how when where there there's here here's they they're them their
    themselves then than though through would should could can't cannot won't don't doesn't didn't isn't aren't
    wasn't weren't haven't hasn't hadn't wouldn't shouldn't couldn't ain't i'm i've i'll i'd it's he's she's
    we're we've we'll let's she him his hers our ours us it its are were been being be not but because about
    from into onto out up down off only very really still ever never always again already yet now today tonight
    tomorrow yesterday year years time times people everyone everybody someone somebody anyone anybody nobody
    nothing something anything everything any some many much more most less least other another such same each
    every both either neither one first new old good bad great better worst worse big little lot lots way thing
    things like love loved hate know knew think thought need get got getting gets make made makes going gone
    went goes coming came see saw seen look looking say said says tell told take took give keep let feel
    felt seem try trying tried work working call right back well yes yeah yep nope please thanks thank sorry if
    or too after before while since until against between during around everywhere anymore else enough guess
    hope wish mean means wait started buy bought pay paid free world life night friend friends guy guys
    everyone's company money posts lol lmao lmfao rofl wtf omg tbh idk smh imo imho btw gonna wanna gotta dunno
    y'all yall ur pls plz thx ugh meh yay damn shit fuck fucking fucked hell amazing awesome awful funny happy
    sad stupid crazy bored boring tired angry mood sick dead hilarious ridiculous pathetic lame gross
    able above across actually add added ago agree ahead almost alone along although among amount anyway
    anywhere appear apply ask asked asking away became become becomes behind believe below beside beyond black
    blue body book bottom boy break bring brought build building built burn business busy buying called calling
    careful carry catch caught changed changes changing cheap child children choice choose city clean clear
    close closed cold common completely consider country cover cry cut dark daughter deal dear decided deep
    definitely deserve died different difficult dinner doing done doubt drink drive driving drop early earth
    easily easy eat eating employee employees ended enjoy entire especially evening event exactly example except
    excited expect expected experience explain eye eyes fact family father favorite fear feeling feelings fight
    figure fill finally find finish fired fit five fix floor follow following food foot forget forgot forward
    found four friday fun future girl gotten government group grow hair happen happened happening head health
    hear heard heart heavy helped helping high holding honest honestly hour hours house huge human hundred hurt
    instead interesting issue it'll join joke jokes kept kid kids killed kinda knowledge known last late later
    laugh laughing lead learn leave leaving led left lie light likely line listen living longer looked looks
    lose losing lost loud lovely low lucky making matter maybe meant meet meeting member middle might miss
    missed mistake monday month months morning mother move moved movie moving myself nearly needed needs none
    nor notice number obviously often others otherwise outside own owner paper pick picture piece played playing
    poor power pretty price probably problems proud pull push put quick quickly quite rather reach read reading
    ready reason remember rich ride road room rules run running safe saying seeing seems self send sense serious
    seriously seven several share short shot showed shut simply sister sit sleep slow small smart sometimes
    somewhere song soon sound space speak speech spend spent stay stayed step stopped story straight strong
    sucks suddenly summer sunday supposed sure taking talk talking tax teach tear thinking third thousand three
    throw thursday together totally touch tough toward town true trust truth tuesday turn turned twice
    understand unless upon used useful using usually view voice waiting wake walk wall wanted wanting wants
    watch watching ways wear wednesday weird whatever whenever whether white whole wife win window within woman
    women won wonder wonderful words worried worry worth wrong yellow young
"""
ENGLISH_WORDS = frozenset(_ENGLISH_TEXT.split())


def language_evidence(text: str, lowered: str | None = None) -> str:
    """The words that tell a text's language: no hashtags, @mentions, URLs, emoji, symbols, digits or punctuation.

    `lowered`: the text lower-cased, when the caller has it already.
    """
    if "://" in text or "www." in (text.lower() if lowered is None else lowered):  # only ASCII letters are w under IGNORECASE
        text = _NOT_PROSE.sub(" ", text)
    elif "#" in text or "@" in text:
        text = _TAGS.sub(" ", text)
    return " ".join(_WORD.findall(text)).replace("’", "'")


def guess_language(text: str, lowered: str | None = None) -> str:
    """The ISO 639 code (639-1 where there is one) of the language a text is in, or "und" when unsure.

    `lowered`: the text lower-cased, when the caller has it already.
    """
    # A cheap first look, before any regex: most English posts say so in their plain, space-separated words.
    # Hashtags and mentions are not words; they never match (their # and @ stay on), and are not counted.
    lowered = text.lower() if lowered is None else lowered
    words = lowered.split()
    if _mostly_english(words, len(words) - text.count("#") - text.count("@")):
        return "en"
    return _guess(language_evidence(text, lowered))


@lru_cache(maxsize=CACHE_SIZE)
def _guess(evidence: str) -> str:
    if not evidence:
        return UNDETERMINED
    words = evidence.lower().split()
    if not evidence.isascii() and len(_NOT_LATIN.findall(evidence)) * 2 > len(evidence) - len(words) + 1:
        return _non_latin(evidence)
    if _mostly_english(words, len(words)):  # again, now that punctuation no longer hides a word ("it," "now!")
        return "en"
    if len(words) < MIN_WORDS or len(evidence) - len(words) + 1 < MIN_LETTERS:
        return UNDETERMINED
    language, confidence = _identify(evidence)
    return language if confidence >= CONFIDENT else UNDETERMINED


def _mostly_english(words: list[str], total: int) -> bool:
    """Whether at least two of the lower-cased words, and ENGLISH_SHARE of `total` words, are English-only words."""
    english = sum(map(ENGLISH_WORDS.__contains__, words))
    return english >= 2 and english >= ENGLISH_SHARE * total


def _non_latin(evidence: str) -> str:
    """A text mostly in another script than Latin: never English, so no confidence is needed to say which.

    A script of one language decides alone; for a shared one (Cyrillic, Arabic, …) CLD2 picks the language,
    and when it has no answer at all the script's most common language stands in.
    """
    for script, language in _SCRIPT_LANGUAGES:
        if script.search(evidence):
            return language
    language, _ = _identify(evidence)
    if language not in (UNDETERMINED, "en"):
        return language
    return next((language for script, language in _SHARED_SCRIPTS if script.search(evidence)), UNDETERMINED)


def _identify(evidence: str) -> tuple[str, float]:
    """CLD2's most likely language and its confidence: the share of the text in it when reliable, else 0."""
    cld2 = _cld2()
    try:
        reliable, _, details = cld2.detect(evidence)
    except cld2.error:  # bytes it cannot read: evidence holds only letters, so this is a safety net
        return UNDETERMINED, 0.0
    _, code, percent, _ = details[0]
    code = code.split("-")[0]  # zh-Hant → zh
    if code in ("un", "xx"):  # CLD2's "unknown"
        return UNDETERMINED, 0.0
    return _OLD_CODES.get(code, code), (percent / 100 if reliable else 0.0)


@lru_cache(maxsize=1)
def _cld2() -> Any:
    """pycld2, imported on first use: its tables are compiled into the extension, so nothing is ever downloaded."""
    import pycld2

    return pycld2
