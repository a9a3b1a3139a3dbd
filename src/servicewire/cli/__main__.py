"""``python -m servicewire.cli ...`` runs the ``servicewire`` command."""

import sys

from servicewire.cli.main import main

sys.exit(main())
