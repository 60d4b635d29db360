"""``python -m deepinside`` runs the ``deepinside`` command."""

import sys

from .cli import main

sys.exit(main())
