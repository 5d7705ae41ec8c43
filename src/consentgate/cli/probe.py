"""``consentgate probe``: ask a running site for walled articles every way a reader could;
the command itself lives in :mod:`consentgate.operator.probe`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consentgate.cli._common import Subparsers


def _add_probe(subparsers: Subparsers) -> None:
    from consentgate.operator import probe

    parser = subparsers.add_parser(
        "probe",
        help="check a running site's wall for leaks, as anonymous readers would try",
        description="Fetch each walled article as a registered reader, then as anonymous "
        "readers through every channel (HEAD, ranges, conditionals, encodings, Accept and "
        "path variants, crawler claims); print a table. Exit status 1 on any leak, 2 on "
        "usage, sign-in or connection problems. See docs/operators.md.",
    )
    probe.add_arguments(parser)
    parser.set_defaults(handler=probe.run)
