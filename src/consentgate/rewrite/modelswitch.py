"""The tree model on and off: it runs only where an operation needs it (see
:class:`~.rewriter.Rewriter`), and what the tokenizer hands over follows from that (the
wanted names of the light path, or every token)."""

from __future__ import annotations

from collections.abc import Sequence

from . import treemodel as T
from ._html import (
    MATHML_OWN_ELEMENTS,
    RAW_TEXT_ELEMENTS,
    SVG_OWN_ELEMENTS,
    VOID_ELEMENTS,
)
from .actions import _Actions
from .elements import _Element
from .errors import RewriteError, RewriteErrorReason
from .state import _Phase
from .treemodel import HTML, ModelLimit, TreeModel

#: End tags that close nothing when no element of theirs is open in foreign content: no
#: HTML element of the name can be open around it (SVG's and MathML's own names; raw-text
#: elements and scripts, never open while tags are read; void elements but br, which
#: leaves foreign content by its own rule). Browsers ignore them.
_IGNORED_IN_FOREIGN = (SVG_OWN_ELEMENTS | MATHML_OWN_ELEMENTS | RAW_TEXT_ELEMENTS | {"script"}) | (
    VOID_ELEMENTS - {"br"}
)


class _ModelSwitch(_Actions):
    """Starting and stopping the tree model, and the tokenizer's wanted names."""

    def _make_element(self, name: str, ns: int, like: T.Node | None) -> _Element:
        element = _Element(like.raw if isinstance(like, _Element) else b"", name, False)
        if not isinstance(like, _Element):
            element._attrs = {}
        element.codec = self._codec
        element.ns = ns
        element.synthetic = True
        return element

    def _start_model(self, context: Sequence[_Element], *, mid_document: bool) -> None:
        """Run the tree model from here on. Mid-document the context is made up (html, body,
        then ``context``): what lies outside it can only make a browser close an element
        earlier than the model does, never later."""
        stack: list[_Element] = []
        mode = T.Mode.INITIAL
        self._model_base = -1  # from the start of the document: never leaves
        if mid_document:
            stack = [self._make_element("html", HTML, None), self._make_element("body", HTML, None)]
            self._model_base = len(stack)
            stack.extend(context)
            mode = T.Mode.IN_BODY
        model = self._model = TreeModel(
            self._make_element,
            self._closed_by_model,  # type: ignore[arg-type]
            max_depth=self._max_depth,
            stack=stack,  # type: ignore[arg-type]
            mode=mode,
        )
        if context:
            model.reset_insertion_mode()  # a cell is in a cell, a row in a row
        self._set_wanted(None)

    def _maybe_stop_model(self) -> None:
        model = self._model
        if model is None or self._dropping:
            return
        if len(model.stack) <= self._model_base:
            self._model = None
            self._update_wanted()
        elif self._cut_over:
            self._cut_over = False
            if self._cut_needs_model_no_more(model):
                self._model = None
                self._model_base = 0
                self._update_wanted()

    def _cut_needs_model_no_more(self, model: TreeModel) -> bool:
        """Every container has ended, and what follows is rewritten as on a page with no cut.

        The model followed the document only so that each cut ends exactly where a browser
        ends its container; once a browser has popped an element off the stack of open
        elements, no later token puts text back inside it (the adoption agency and foster
        parenting place nodes at or above the current node, and the container is no longer
        below it). So the rest is the light path's, as for a page without a wall, which
        costs a regular expression instead of a Python step per token. Not while SVG or
        MathML is open (the light path would not know the tokens are foreign), in a
        template, or while text is being captured, nor when another operation needs the
        model itself.
        """
        return (
            self._light_after_cut
            and self._capture is None
            and not model.in_template
            and all(node.ns == HTML for node in model.stack)
        )

    def _update_wanted(self) -> None:
        if self._model is not None or self._content_fallbacks or self._capture is not None:
            self._set_wanted(None)
        else:
            self._set_wanted(self._light_wanted, self._light_only_with)

    def _set_wanted(
        self,
        names: frozenset[str] | None,
        only_with: dict[str, frozenset[str]] | None = None,
        *,
        foreign: bool = False,
    ) -> None:
        state = (names, foreign)
        if state != self._wanted_state:
            self._wanted_state = state
            self._tokenizer.set_wanted(
                names, foreign=foreign, only_with=only_with, whole_foreign=self._whole_foreign
            )

    def _update_model_wanted(self) -> None:
        """The model runs for foreign content met on the light path: while the current node is
        an SVG/MathML element (not an integration point) and nothing is being cut, removed or
        captured, the tokenizer skips SVG's own tags in C."""
        model = self._model
        if model is None or self._model_base <= 0:
            return
        stack = model.stack
        node = stack[-1] if stack else None
        if (
            node is not None
            and node.ns != HTML
            and self._foreign_wanted is not None
            and not T.is_integration_point(node)
            and not self._dropping
            and self._capture is None
            and not self._content_fallbacks
        ):
            self._set_wanted(self._foreign_wanted, self._light_only_with, foreign=True)
        else:
            self._set_wanted(None)

    def _closed_by_model(self, element: _Element) -> None:
        if self._collect is not None:
            self._collect.append(element)
        else:
            self._after_implicit_close(element)

    def _model_limit(self, exc: ModelLimit) -> None:
        """The stack outgrew ``max_depth``: nothing the model says can be trusted any more."""
        busy = self._dropping or any(
            s.phase is _Phase.ACTIVE or s.phase is _Phase.CUTTING for s in self._truncates
        )
        if busy or self._always_model:
            raise RewriteError(RewriteErrorReason.MODEL_LIMIT, str(exc)) from exc
        self.report.warnings.append(f"{exc}; the rest is rewritten without the tree model")
        self._model = None
        self._update_wanted()

    def _leaves_foreign_content(self, model: TreeModel, name: str) -> bool:
        """Foreign content entered on the light path, whose ancestors the model does not know:
        an end tag for no element open in it most likely closes one of them (<p><svg> … </p>),
        which ends the foreign content. Leaving it early is the safe mistake here (only
        consent markup is placed on this path, never a cut). True when the model stopped."""
        stack = model.stack
        if self._model_base <= 0 or stack[-1].ns == HTML or model.has_open(name):
            return False
        if self._foreign_exact:
            # An operation acts inside foreign content (the wall's ``svg script``): there
            # the safe mistake is the other one, staying in it, where the model places the
            # end tag as a browser does when nothing of the name is open outside. Later
            # tags are then taken for foreign ones, so that such a script goes rather than
            # a browser's SVG script being read as an HTML one.
            return False
        if name in _IGNORED_IN_FOREIGN:
            return False  # the model ignores it, as a browser does
        if any(node.name == name for node in stack[self._model_base :]):
            return False  # an SVG/MathML element of that name is open: the model places it
        while len(stack) > self._model_base and stack[-1].ns != HTML:
            model.pop()
        self._maybe_stop_model()
        return self._model is None
