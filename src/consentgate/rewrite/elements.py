"""The rewriter's element: one object per start tag, shared by the tokenizer (which builds
it), the tree model (which keeps it on its stack) and the selectors (which read it)."""

from __future__ import annotations

import html

from .tokens import StartTag
from .treedata import HTML


class _Element(StartTag):
    """An element: the start tag the tokenizer made (the rewriter has it build this class, so
    there is one object per tag), its namespace, whether it is open, and lazily decoded
    attributes. Elements the tree model creates without a tag of their own (an implied
    ``<tbody>``, a reconstructed ``<b>``) are ``synthetic``: their bytes are never written.
    """

    __slots__ = ("_classes", "_decoded", "codec", "ns", "open", "synthetic")

    _classes: frozenset[str]
    _decoded: dict[str, str]
    codec: str
    ns: int
    open: bool
    synthetic: bool

    def __init__(self, raw: bytes, name: str, self_closing: bool) -> None:
        # StartTag.__init__'s fields set here rather than by calling it: one of these is made
        # for every start tag of a page, and the call was a tenth of making it.
        self.raw = raw
        self.name = name
        self.self_closing = self_closing
        self._attrs = None
        self.ns = HTML
        self.open = False
        self.synthetic = False

    @property
    def foreign(self) -> bool:
        return self.ns != HTML

    @property
    def attrs(self) -> dict[str, str]:
        try:
            return self._decoded
        except AttributeError:
            codec = self.codec
            self._decoded = {
                name.decode(codec, "surrogateescape"): _decode_value(value, codec)
                for name, value in self.raw_attrs.items()
            }
            return self._decoded

    def get_attr(self, name: str) -> str | None:
        if name.isascii():
            # Only the bytes of an ASCII name decode to it in the encodings we rewrite, so
            # decoding this one value is the same as decoding them all and looking it up.
            key = name.encode("ascii")
            if self._attrs is None and key.lower() not in self.raw.lower():
                # No attribute of that name, without parsing them all: a selector asks
                # every <script> for [data-consent] and most have none.
                return None
            value = self.raw_attrs.get(key)
            return None if value is None else _decode_value(value, self.codec)
        return self.attrs.get(name)

    def may_hold(self, values: tuple[bytes, ...]) -> bool:
        # An ASCII character of a decoded value is its own byte in every encoding the
        # rewriter accepts (see charset.py), so a value is in the bytes of the tag unless a
        # character reference spells part of it.
        raw = self.raw
        if b"&" in raw:
            return True
        for value in values:  # noqa: SIM110 - a loop, not all(): asked of every <div>
            if value not in raw:
                return False
        return True

    @property
    def classes(self) -> frozenset[str]:
        try:
            return self._classes
        except AttributeError:
            self._classes = frozenset((self.get_attr("class") or "").split())
            return self._classes


def _decode_value(value: bytes, codec: str) -> str:
    text = value.decode(codec, "surrogateescape")
    return html.unescape(text) if "&" in text else text
