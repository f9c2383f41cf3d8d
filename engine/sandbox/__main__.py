"""``python -m engine.sandbox``: the same as ``tdsync sandbox``."""

import sys

from engine.sandbox.server import cli_main

sys.exit(cli_main())
