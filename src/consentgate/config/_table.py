"""The configuration as its readers see it: a table that remembers which keys they asked
for, so that a key nobody asked for is refused with the nearest known key suggested."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from consentgate.errors import ConfigError


class Table(Mapping[str, Any]):
    """A table of the configuration as the readers see it. It remembers the keys they ask
    for, so that afterwards a key no reader asked for is refused, at every level and in list
    items alike: a misspelt key must not silently leave its default in place
    (``[policy] verison = "2"`` would keep version 1 and ask nobody to accept again).

    A reader that iterates a table (languages, countries) checks its keys itself.
    """

    __slots__ = ("_asked", "_children", "_data", "_iterated", "_path")

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self._data = data
        self._path = path
        self._asked: set[str] = set()
        self._iterated = False
        self._children: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        self._asked.add(key)
        value = self._data[key]
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._wrap(self._key(key), value)
        return child

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._asked.add(key)
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        self._iterated = True
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def _key(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    @staticmethod
    def _wrap(path: str, value: Any) -> Any:
        if isinstance(value, Mapping) and not isinstance(value, Table):
            return Table(value, path)
        if isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            return [
                Table(item, f"{path}[{index}]") if isinstance(item, Mapping) else item
                for index, item in enumerate(value)
            ]
        return value

    def _tables(self) -> Iterator[Table]:
        yield self
        for child in self._children.values():
            items = child if isinstance(child, list) else [child]
            for item in items:
                if isinstance(item, Table):
                    yield from item._tables()

    def refuse_unknown(self) -> None:
        """Raise for the first key no reader asked for, suggesting the nearest known one."""
        for table in self._tables():
            if table._iterated:
                continue
            for key in table._data:
                if key not in table._asked:
                    raise unknown_key(table._key(key), key, table._asked)

    def misspelling_of(self, failed: str) -> ConfigError | None:
        """The error for an unasked key that looks like ``failed`` (a full key path) in the
        table that holds it, if there is one."""
        parent, _, name = failed.rpartition(".")
        for table in self._tables():
            if table._path != parent or table._iterated:
                continue
            unasked = [key for key in table._data if key not in table._asked]
            close = difflib.get_close_matches(name, unasked, n=1, cutoff=0.75)
            if close:
                return unknown_key(table._key(close[0]), close[0], table._asked | {name})
        return None


def unknown_key(path: str, key: str, known: Iterable[str]) -> ConfigError:
    """The one wording for a key nobody reads, with the nearest known key when one is close."""
    choices = sorted(known)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
    if close:
        return ConfigError(path, f"unknown key — did you mean {close[0]!r}?")
    if choices:
        return ConfigError(path, f"unknown key; known: {', '.join(choices)}")
    return ConfigError(path, "unknown key; this table takes no keys")
