"""The event's search query as a local filter, for streams that deliver everything (Jetstream).

Understands the common subset of X/Bluesky search syntax: words and "quoted phrases" (all must match),
OR between alternatives, parentheses, a leading `-` to exclude. Operators such as `lang:en` or
`is:retweet` are a server's business and match everything here. Words match whole words, case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Matcher = Callable[[str], bool]
_TOKEN = re.compile(r'"[^"]*"|\(|\)|-?[^\s()"]+')


def compile_query(query: str) -> Matcher:
    """A function telling whether a text matches the query; an empty query matches everything."""
    tokens = _TOKEN.findall(query)
    if not tokens:
        return _always
    parser = _Parser(tokens)
    matcher = parser.expression()
    if parser.position < len(tokens):  # an unbalanced ")": read the rest as more required terms
        rest = compile_query(" ".join(tokens[parser.position + 1 :]))
        return _all([matcher, rest])
    return matcher


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def expression(self) -> Matcher:
        alternatives = [self._sequence()]
        while self._peek() == "OR":
            self.position += 1
            alternatives.append(self._sequence())
        return alternatives[0] if len(alternatives) == 1 else _any(alternatives)

    def _sequence(self) -> Matcher:
        required: list[Matcher] = []
        while self._peek() not in (None, "OR", ")"):
            required.append(self._unary())
        return _all(required)

    def _unary(self) -> Matcher:
        token = self.tokens[self.position]
        self.position += 1
        if token == "(":
            inner = self.expression()
            if self._peek() == ")":
                self.position += 1
            return inner
        if token.startswith("-") and len(token) > 1:
            excluded = _term(token[1:])
            return _always if excluded is _always else (lambda text: not excluded(text))
        return _term(token)


def _term(token: str) -> Matcher:
    word = token.strip('"')
    if not word or (":" in word and not token.startswith('"')):
        return _always
    pattern = re.compile(r"(?<![\w@])" + re.escape(word) + r"(?!\w)", re.IGNORECASE)
    return lambda text: pattern.search(text) is not None


def _always(_text: str) -> bool:
    return True


def _all(matchers: list[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]
    return lambda text: all(matcher(text) for matcher in matchers)


def _any(matchers: list[Matcher]) -> Matcher:
    return lambda text: any(matcher(text) for matcher in matchers)
