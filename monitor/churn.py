"""Churn intent: whether a post's author says they are leaving, sentence by sentence.

The patterns (scoring.churn_patterns) find candidate statements; a statement only counts when its sentence
is not a question and the words just before it name no third person and no negation — "Everyone is
leaving Twitter", "Will you leave Twitter?" and "I'm not leaving" are reports, questions and denials.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from monitor.scoring import GatedSearch, churn_parts

# Subjects that make what follows somebody else's act, or a call to others; words that deny it.
_OTHER_WORDS = """people everyone everybody they they're theyre them those these users folks celebrities celebs
advertisers employees staff he she he's she's you you're youre y'all yall others many some hundreds thousands
millions libs liberals leftists who whoever anyone anybody someone somebody all let's lets"""
_OTHERS = frozenset(_OTHER_WORDS.split())
_NEGATION_WORDS = "not never no don't dont won't wont isn't ain't can't cannot"
_NEGATIONS = frozenset(_NEGATION_WORDS.split())
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_QUESTION = re.compile(r"\?[^\w]*$")
_WORDS_BEFORE = 3  # how far back a third-person subject is looked for (a negation: the word just before)


class ChurnDetector:
    """Finds first-person statements of leaving the platforms named in `platforms`."""

    def __init__(self, patterns: Sequence[str], platforms: Iterable[str]) -> None:
        self.gate = GatedSearch(
            [re.compile(part, re.IGNORECASE | re.MULTILINE) for part in churn_parts(patterns, platforms)]
        )

    def found(self, text: str, lowered: str | None = None) -> bool:
        """Whether the (preprocessed) text states its author's intent to leave; `lowered`: it lower-cased, if at hand."""
        if "#" in text:  # a hashtag's word counts as a word; a hashtag alone never says "I"
            text, lowered = text.replace("#", ""), None
        # cheap: most posts have none of the words any pattern needs, and a sentence lacks what its text lacks
        patterns = self.gate.possible(text, lowered)
        if not any(pattern.search(text) for pattern in patterns):
            return False
        return any(self._stated(sentence, patterns) for sentence in _SENTENCE_END.split(text))

    def _stated(self, sentence: str, patterns: list[re.Pattern[str]]) -> bool:
        if _QUESTION.search(sentence):
            return False
        return any(
            not _reported(sentence[: match.start()]) for pattern in patterns for match in pattern.finditer(sentence)
        )


def _reported(before: str) -> bool:
    """The last few words before a statement make it a report, a denial or advice, not the author's own intent."""
    words = [word.strip(".,!:;\"'()").lower().replace("’", "'") for word in before.split()[-_WORDS_BEFORE:]]
    negated = bool(words) and (words[-1] in _NEGATIONS or words[-1].endswith("n't"))
    return negated or any(word in _OTHERS for word in words)
