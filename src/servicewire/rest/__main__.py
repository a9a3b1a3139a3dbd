"""``python -m servicewire.rest APP PATH``: export an app's OpenAPI document.

python -m servicewire.rest servicewire.rest.example:app docs/api/example.json
"""

import sys

from servicewire.rest.openapi import main

sys.exit(main())
