"""``python -m modelling.cli``, where the ``gvr`` script is not installed."""

import sys

from modelling.cli.app import main

sys.exit(main())
