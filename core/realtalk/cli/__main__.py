"""``python -m realtalk.cli``: the ``realtalk`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
