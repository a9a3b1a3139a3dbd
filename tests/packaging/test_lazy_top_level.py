"""``import servicewire`` stays light: SQLAlchemy and the pipeline load on first use.

Every ``servicewire.x`` import runs the package's ``__init__`` first, so whatever it
imports eagerly every program pays (it was about 1.2 s of CPU with SQLAlchemy's ORM
and asyncio extension). The top-level names that need those modules are imported on
first use instead (PEP 562 ``__getattr__``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import servicewire

HEAVY = ("sqlalchemy", "aiosqlite", "tenacity", "servicewire.service", "servicewire.pipeline")


def _loaded_after(statement: str) -> list[str]:
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    code = f"import json, sys\n{statement}\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_contracts_and_codecs_do_not_load_the_database_stack() -> None:
    assert _loaded_after("import servicewire") == []
    assert _loaded_after("from servicewire import Command, Event, DecodeError") == []
    assert _loaded_after("import servicewire.codecs, servicewire.messaging") == []


def test_a_lazy_name_loads_its_module_on_use() -> None:
    assert "sqlalchemy" in _loaded_after("from servicewire import Service")
    # a subpackage reached through the package alone, as when __init__ imported it
    code = (
        "import servicewire\nassert servicewire.outbox.write_messages is servicewire.write_messages"
    )
    assert "sqlalchemy" in _loaded_after(code)


def test_every_public_name_resolves_to_its_modules_object() -> None:
    from servicewire.outbox import write_messages
    from servicewire.pipeline import Context, RetryPolicy
    from servicewire.relay import create_relay
    from servicewire.security import TLSConfig
    from servicewire.service import Service, ServiceOptions
    from servicewire.transports import Transport, connect_transport

    expected = {
        "write_messages": write_messages,
        "Context": Context,
        "RetryPolicy": RetryPolicy,
        "create_relay": create_relay,
        "TLSConfig": TLSConfig,
        "Service": Service,
        "ServiceOptions": ServiceOptions,
        "Transport": Transport,
        "connect_transport": connect_transport,
    }
    for name, value in expected.items():
        assert getattr(servicewire, name) is value, name
    assert all(hasattr(servicewire, name) for name in servicewire.__all__)
    assert set(servicewire.__all__) <= set(dir(servicewire))
    try:
        getattr(servicewire, "NoSuchName")  # noqa: B009
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
