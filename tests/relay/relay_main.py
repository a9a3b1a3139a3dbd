"""Run ``servicewire`` with the test sink transport registered (for relay subprocesses).

python -m tests.relay.relay_main relay --db URL --transport testsink://... --mode polling
"""

from __future__ import annotations

import sys

from servicewire.cli.main import main
from tests.relay.sink import register

if __name__ == "__main__":
    register()
    sys.exit(main(sys.argv[1:]))
