"""A generated document as the text to write: JSON, or YAML for a ``.yaml`` file.

    path = Path("docs/api/order-asyncapi.yaml")
    path.write_text(document_text(build_asyncapi("Order Service", "1.0.0", uses), path.suffix))

JSON is indented by two spaces, keeps non-ASCII characters and ends with a newline, so a
checked-in document regenerated from unchanged code is byte for byte the same.
"""

from __future__ import annotations

import json
from typing import Any

YAML_SUFFIXES = (".yaml", ".yml")


def document_text(doc: dict[str, Any], suffix: str = ".json") -> str:
    """``doc`` as JSON, or as YAML when ``suffix`` is ``.yaml`` or ``.yml``."""
    if suffix in YAML_SUFFIXES:
        import yaml  # only YAML output needs it

        return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
