"""``python -m m3_integrations.cli``: the ``m3`` command."""

import sys

from . import main

sys.exit(main())
