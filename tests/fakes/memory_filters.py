"""The OData `$filter` subset the memory twin (`tests.fakes.memory_tables`) reads, and the SDK's
parameter substitution: comparisons `eq ne gt ge lt le` of a property with a string, integer,
boolean or datetime literal, joined by `and`, `or` and parentheses. Anything else is refused
(`NotImplementedError`) rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

_INT32_BITS = 32  # a parameter beyond it is sent as an Int64 literal (`NL`)

Predicate = Callable[[dict[str, Any]], bool]
_Tokens = list[tuple[str, str]]

_TOKEN = re.compile(
    r"\s*(?:(?P<open>\()|(?P<close>\))|(?P<string>'(?:[^']|'')*')"
    r"|(?P<datetime>datetime'[^']*')"
    r"|(?P<number>-?\d+L?)(?![\w.])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
_COMPARE = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_KEYWORDS = {*_COMPARE, "and", "or", "not", "true", "false"}


def substitute(query_filter: str, parameters: Mapping[str, Any] | None) -> str:
    """`@name` → an OData literal, by the SDK's rules (`_serialize._parameter_filter_substitution`):
    only words separated by single spaces are replaced, so `(@name)` is not (write `( @name )`)."""
    if not parameters:
        return query_filter
    words = query_filter.split(" ")
    for index, word in enumerate(words):
        if word.startswith("@"):
            words[index] = _literal(parameters[word[1:]])
    return " ".join(words)


def _literal(value: Any) -> str:
    if value in (True, False):  # as in the SDK, so 1 and 0 become true and false too
        return str(bool(value)).lower()
    if isinstance(value, int):
        return str(value) if value.bit_length() <= _INT32_BITS else f"{value}L"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):  # the SDK's `_to_utc_datetime`
        return "datetime'" + value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"
    raise NotImplementedError(f"the memory twin does not model {type(value).__name__} parameters")


def parse_filter(text: str) -> Predicate:
    """A predicate over an entity's properties. A comparison with a missing property, or with a
    value of another type, is false (so `ne` does not match an entity without the property)."""
    tokens = _tokens(text)
    predicate, rest = _or(tokens)
    if rest:
        raise NotImplementedError(f"unexpected {rest[0][1]!r} in filter {text!r}")
    return predicate


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while text[position:].strip():
        found = _TOKEN.match(text, position)
        if found is None or found.lastgroup is None:
            raise NotImplementedError(f"the memory twin cannot read {text[position:]!r}")
        tokens.append((found.lastgroup, found.group(found.lastgroup)))
        position = found.end()
    return tokens


def _or(tokens: _Tokens) -> tuple[Predicate, _Tokens]:
    left, tokens = _and(tokens)
    while tokens and tokens[0] == ("word", "or"):
        right, tokens = _and(tokens[1:])
        left = _either(left, right)
    return left, tokens


def _and(tokens: _Tokens) -> tuple[Predicate, _Tokens]:
    left, tokens = _primary(tokens)
    while tokens and tokens[0] == ("word", "and"):
        right, tokens = _primary(tokens[1:])
        left = _both(left, right)
    return left, tokens


def _either(a: Predicate, b: Predicate) -> Predicate:
    return lambda properties: a(properties) or b(properties)


def _both(a: Predicate, b: Predicate) -> Predicate:
    return lambda properties: a(properties) and b(properties)


def _primary(tokens: _Tokens) -> tuple[Predicate, _Tokens]:
    if tokens and tokens[0][0] == "open":
        inner, rest = _or(tokens[1:])
        if not rest or rest[0][0] != "close":
            raise NotImplementedError("unbalanced parentheses in filter")
        return inner, rest[1:]
    if len(tokens) < len(("property", "operator", "literal")):
        raise NotImplementedError("a filter ends in the middle of a comparison")
    (kind, name), (_, operator), literal = tokens[0], tokens[1], tokens[2]
    if kind != "word" or name in _KEYWORDS or operator not in _COMPARE:
        raise NotImplementedError(f"the memory twin reads only `property op literal`, not {name!r}")
    return _comparison(name, _COMPARE[operator], _value(literal)), tokens[3:]


def _value(token: tuple[str, str]) -> Any:
    kind, text = token
    if kind == "string":
        return text[1:-1].replace("''", "'")
    if kind == "number":
        return int(text.rstrip("L"))
    if kind == "datetime":
        return datetime.fromisoformat(text[len("datetime'") : -1])
    if token in (("word", "true"), ("word", "false")):
        return text == "true"
    raise NotImplementedError(f"the memory twin does not read the literal {text!r}")


def _comparison(name: str, compare: Any, literal: Any) -> Predicate:
    def matches(properties: dict[str, Any]) -> bool:
        if name not in properties:
            return False
        value = properties[name]
        if isinstance(value, bool) != isinstance(literal, bool) or not _same_kind(value, literal):
            return False
        return bool(compare(value, literal))

    return matches


def _same_kind(value: Any, literal: Any) -> bool:
    if isinstance(literal, datetime):
        return isinstance(value, datetime)
    if isinstance(literal, str):
        return isinstance(value, str)
    return isinstance(value, int | float) and not isinstance(value, str)
