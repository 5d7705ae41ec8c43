"""Streaming HTML rewriting: insert, remove, rewrite attributes, transform raw text, truncate.

Independent of the rest of consentgate; see ``docs/rewriter.md``.
"""

from .charset import (
    CharsetDecision,
    charset_from_content_type,
    detect_charset,
    is_safe_charset,
    normalize_charset,
    prescan_meta_charset,
)
from .errors import RewriteError, RewriteErrorReason, SelectorError
from .headers import StreamingDecoder, is_rewritable, is_rewritable_content_type
from .memo import RewriteMemo
from .operations import (
    AttributesCallback,
    AttributesPredicate,
    InsertHTML,
    Operation,
    Position,
    RemoveElement,
    RewriteAttributes,
    ShortContainer,
    TextCallback,
    TransformText,
    Truncate,
)
from .rewriter import Rewriter, RewriteReport, rewrite_html
from .selectors import Selector, compile_selector

__all__ = [
    "AttributesCallback",
    "AttributesPredicate",
    "CharsetDecision",
    "InsertHTML",
    "Operation",
    "Position",
    "RemoveElement",
    "RewriteAttributes",
    "RewriteError",
    "RewriteErrorReason",
    "RewriteMemo",
    "RewriteReport",
    "Rewriter",
    "Selector",
    "SelectorError",
    "ShortContainer",
    "StreamingDecoder",
    "TextCallback",
    "TransformText",
    "Truncate",
    "charset_from_content_type",
    "compile_selector",
    "detect_charset",
    "is_rewritable",
    "is_rewritable_content_type",
    "is_safe_charset",
    "normalize_charset",
    "prescan_meta_charset",
    "rewrite_html",
]
