"""``python -m consentgate.cli``: the same as the ``consentgate`` command."""

import sys

from consentgate.cli import main

sys.exit(main())
