"""``python -m poshuk_cli``: the ``poshuk`` command."""

import sys

from poshuk_cli.main import main

sys.exit(main())
