"""Decide a response's character encoding and whether byte-level rewriting is safe for it.

The rewriter works on bytes: it looks for ``<``, ``>``, quotes, ``=``, ``/``, ``!``, ``-``,
``?`` and ASCII whitespace, and for ASCII letters right after ``<``. That is only correct when
every byte below 0x40 always stands for that ASCII character, i.e. never occurs inside a
multi-byte character. This holds for UTF-8, all single-byte encodings (windows-125x,
ISO-8859-x, KOI8, Mac, IBM866, TIS-620), EUC-JP/EUC-KR (trail bytes >= 0xA1), GBK/GB18030
(trail bytes >= 0x40, four-byte forms only add digits), Shift_JIS and Big5 (trail bytes >= 0x40:
they can be ``\\`` or letters, which never start or end markup). It does not hold for UTF-16/32,
ISO-2022-* and HZ (7-bit escapes make ``<`` part of characters), UTF-7, or names Python does
not know: those are reported as unsafe.

When nothing declares an encoding we do not guess: markup is handled as bytes either way, and
inserted snippets are encoded as ASCII with character references (``&#233;``), which is correct
in every safe encoding. :attr:`CharsetDecision.declared` tells the two cases apart.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from .tokenizer import iter_attributes

PRESCAN_BYTES = 1024

_SAFE_CODECS = frozenset(
    (
        "utf-8",
        "ascii",
        "latin-1",
        "cp437",
        "cp850",
        "cp866",
        "cp874",
        "koi8-r",
        "koi8-u",
        "mac-roman",
        "mac-cyrillic",
        "gb18030",
        "gbk",
        "gb2312",
        "euc_jp",
        "euc_kr",
        "shift_jis",
        "cp932",
        "big5",
        "big5hkscs",
        "cp949",
        "tis-620",
    )
)
_SAFE_CODEC_PREFIXES = ("cp125", "iso8859-")

#: WHATWG labels that Python spells differently, or maps to another encoding.
_WHATWG_ALIASES = {
    "unicode-1-1-utf-8": "utf-8",
    "unicode11utf8": "utf-8",
    "unicode20utf8": "utf-8",
    "x-unicode20utf8": "utf-8",
    "utf8": "utf-8",
    # The web treats these as windows-1252.
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "x-cp1252": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-gbk": "gbk",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-ukrainian": "mac-cyrillic",
    "dos-874": "cp874",
    "windows-874": "cp874",
    "iso-8859-11": "cp874",
    "x-euc-jp": "euc_jp",
    "ks_c_5601-1987": "cp949",
    "windows-949": "cp949",
}


@dataclass(frozen=True, slots=True)
class CharsetDecision:
    """The encoding to use, where it came from, and whether byte-level rewriting is safe."""

    #: Python codec name (``"utf-8"``, ``"cp1252"`` ...), or the raw label when unknown.
    encoding: str
    #: ``"bom"``, ``"header"``, ``"meta"`` or ``"default"``.
    source: str
    #: True when bytes 0x00-0x3F always stand for ASCII characters in this encoding.
    safe: bool

    @property
    def declared(self) -> bool:
        """False when nothing declared the encoding and ``utf-8`` is only an assumption."""
        return self.source != "default"

    @property
    def snippet_encoding(self) -> str:
        """Encoding for inserted snippets: ASCII (plus character references) when undeclared."""
        return self.encoding if self.declared else "ascii"


def normalize_charset(label: str) -> str | None:
    """Map an encoding label to a Python codec name, or None when Python does not know it."""
    cleaned = label.strip().strip("\"'").strip().lower()
    if not cleaned:
        return None
    cleaned = _WHATWG_ALIASES.get(cleaned, cleaned)
    try:
        return codecs.lookup(cleaned).name
    except LookupError:
        return None


def is_safe_charset(codec_name: str) -> bool:
    """True when the (normalised) encoding keeps bytes 0x00-0x3F for ASCII only."""
    return codec_name in _SAFE_CODECS or codec_name.startswith(_SAFE_CODEC_PREFIXES)


_CHARSET_PARAM = re.compile(r"""charset\s*=\s*("[^"]*"|'[^']*'|[^\s;,"']+)""", re.IGNORECASE)


def charset_from_content_type(content_type: str | None) -> str | None:
    """The raw ``charset`` parameter of a ``Content-Type`` value, if any."""
    if not content_type:
        return None
    params = content_type.partition(";")[2]
    match = _CHARSET_PARAM.search(params)
    if match is None:
        return None
    value = match.group(1).strip("\"'").strip()
    return value or None


def sniff_bom(data: bytes) -> str | None:
    """The encoding a byte order mark announces; it overrides every declaration."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


_PRESCAN = re.compile(rb"<!--.*?-->|<meta(?=[\t\n\f\r /])[^>]*>?", re.IGNORECASE | re.DOTALL)
_META_CONTENT_CHARSET = re.compile(
    rb"""charset\s*=\s*(?:"([^"]*)"?|'([^']*)'?|([^\s;"']+))""", re.IGNORECASE
)


def prescan_meta_charset(head: bytes) -> str | None:
    """The charset label a ``<meta>`` in the first 1024 bytes declares (HTML prescan, simplified).

    Comments are skipped; ``<meta charset=x>`` and
    ``<meta http-equiv="content-type" content="text/html; charset=x">`` are recognised.
    """
    for match in _PRESCAN.finditer(head[:PRESCAN_BYTES]):
        raw = match.group(0)
        if raw.startswith(b"<!--"):
            continue
        attrs = dict(iter_attributes(raw, 5, len(raw)))
        if attrs.get(b"charset"):
            return attrs[b"charset"].decode("ascii", "replace").strip()
        equiv = attrs.get(b"http-equiv", b"").strip().lower()
        content = attrs.get(b"content")
        if equiv == b"content-type" and content:
            found = _META_CONTENT_CHARSET.search(content)
            if found:
                label = next(g for g in found.groups() if g is not None)
                return label.decode("ascii", "replace").strip()
    return None


def _decision_for_label(label: str, source: str) -> CharsetDecision:
    codec_name = normalize_charset(label)
    if codec_name is None:
        return CharsetDecision(label, source, safe=False)
    if source == "meta" and codec_name.startswith(("utf-16", "utf-32")):
        # A meta tag we could read as ASCII cannot really be UTF-16 (HTML spec: use UTF-8).
        codec_name = "utf-8"
    return CharsetDecision(codec_name, source, safe=is_safe_charset(codec_name))


def detect_charset(content_type: str | None = None, head: bytes = b"") -> CharsetDecision:
    """Decide the encoding: BOM, then the header's charset, then a ``<meta>`` prescan.

    ``head`` should be the first 1024 bytes of the body (fewer is fine at end of input).
    Without any declaration the result is ``utf-8`` with ``source="default"`` (see module doc).
    """
    bom = sniff_bom(head)
    if bom is not None:
        return _decision_for_label(bom, "bom")
    header_label = charset_from_content_type(content_type)
    if header_label is not None:
        return _decision_for_label(header_label, "header")
    meta_label = prescan_meta_charset(head)
    if meta_label:
        return _decision_for_label(meta_label, "meta")
    return CharsetDecision("utf-8", "default", safe=True)
