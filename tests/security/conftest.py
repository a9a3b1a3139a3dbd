from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.certs import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA and its certificates per test module."""
    return Pki.make(Path(tmp_path_factory.mktemp("pki")))
