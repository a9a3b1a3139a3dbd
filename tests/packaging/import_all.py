"""Import every module of the installed servicewire and ftgo; print what failed, as JSON.

Run by tests/packaging/test_wheel.py with a clean venv's interpreter, outside the
source tree, so what is imported is the installed wheel: {"module": "missing name"}.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys

failed: dict[str, str] = {}
for top in ("servicewire", "ftgo"):
    package = importlib.import_module(top)
    assert "site-packages" in (package.__file__ or ""), package.__file__
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{top}."):
        if info.name.endswith(".__main__"):  # importing one runs its command
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            failed[info.name] = exc.name or "?"
        except ImportError as exc:  # an optional library present but unusable counts too
            failed[info.name] = f"ImportError: {exc}"
json.dump(failed, sys.stdout)
