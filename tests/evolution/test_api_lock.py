"""The API lock file: `servicewire api check` on this project, and the lock workflow.

The first test is what makes ``make test`` enforce the lock: any change to a published
API (see ``[tool.servicewire.api]`` in pyproject.toml) without the bump it needs fails.
The others run the lock/check cycle on a throwaway project in a temp directory.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from servicewire.cli.main import main

ROOT = Path(__file__).resolve().parents[2]

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Kitchen", "version": "1.0.0"},
    "paths": {
        "/v1/tickets/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "a ticket",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"id": {"type": "string"}},
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}

PROTO = """// api-version: {version}
syntax = "proto3";
package kitchen.v1;
service Kitchen {{
  rpc Get(GetRequest) returns (Ticket);
}}
message GetRequest {{ string id = 1; }}
message Ticket {{ string id = 1;{extra} }}
"""

CONTRACTS = '''
from servicewire.messaging.contracts import Event

class TicketCreated(Event, name="kitchen.TicketCreated", version="{version}",
                    channel="kitchen.events", register=False):
    """A ticket was created."""
    ticket_id: str
{extra}

USES = [ChannelUse("kitchen.events", "send", [TicketCreated])]
'''


def test_this_project_matches_its_api_lock(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["api", "check", "--project", str(ROOT)])
    out = capsys.readouterr().out
    assert code == 0, out


class Project:
    """A throwaway project with one API of each kind."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.module = f"kitchen_{uuid.uuid4().hex[:10]}"
        self.revision = 0
        (root / "src").mkdir()
        (root / "protos").mkdir()
        self.write_openapi(OPENAPI)
        self.write_proto("1.0.0")
        self.write_contracts("1.0.0")

    def write_pyproject(self) -> None:
        module = f"{self.module}_{self.revision}"
        (self.root / "pyproject.toml").write_text(
            "[tool.servicewire.api]\n"
            'openapi = ["openapi.json"]\n'
            'proto = ["protos/*.proto"]\n'
            f'contracts = ["{module}"]\n'
            f'asyncapi = [{{ target = "{module}:USES", version = "1.0.0", title = "Kitchen" }}]\n'
        )

    def write_openapi(self, doc: dict[str, object]) -> None:
        (self.root / "openapi.json").write_text(json.dumps(doc, indent=2))

    def write_proto(self, version: str, extra: str = "") -> None:
        (self.root / "protos" / "kitchen.proto").write_text(
            PROTO.format(version=version, extra=extra)
        )

    def write_contracts(self, version: str, extra: str = "") -> None:
        # A fresh module name per revision: Python caches imported modules.
        self.revision += 1
        body = "from servicewire.messaging.channels import ChannelUse\n" + CONTRACTS.format(
            version=version, extra=extra
        )
        (self.root / "src" / f"{self.module}_{self.revision}.py").write_text(body)
        self.write_pyproject()

    def run(self, *args: str) -> int:
        return main(["api", *args, "--project", str(self.root)])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_lock_then_check_passes(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert project.run("check") == 1  # no lock yet: every API is new
    assert project.run("lock") == 0
    lock = json.loads((project.root / "api.lock.json").read_text())
    assert set(lock["apis"]) == {
        "openapi:openapi.json",
        "proto:protos/kitchen.proto",
        "jsonschema:kitchen.TicketCreated@1",
        "avro:kitchen.TicketCreated@1",
        f"asyncapi:{project.module}_1:USES",
    }
    assert all(len(e["sha256"]) == 64 and e["version"] == "1.0.0" for e in lock["apis"].values())
    capsys.readouterr()
    assert project.run("check") == 0
    assert "5 API(s) match" in capsys.readouterr().out


def test_change_without_bump_fails_with_reasons(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert project.run("lock") == 0
    doc = json.loads(json.dumps(OPENAPI))
    doc["paths"]["/v1/tickets/{id}"]["get"]["parameters"].append(
        {"name": "verbose", "in": "query", "required": True, "schema": {"type": "boolean"}}
    )
    project.write_openapi(doc)
    capsys.readouterr()
    assert project.run("check") == 1
    out = capsys.readouterr().out
    assert "FAIL  openapi:openapi.json" in out
    assert "request-parameter-added-required" in out and "MAJOR" in out
    assert project.run("lock") == 1  # refuses to record a wrong version
    doc["info"]["version"] = "2.0.0"
    project.write_openapi(doc)
    assert project.run("check") == 1  # correctly bumped, but the lock is stale
    assert "run 'servicewire api lock'" in capsys.readouterr().out
    assert project.run("lock") == 0
    assert project.run("check") == 0


def test_bump_without_change_fails(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert project.run("lock") == 0
    project.write_proto("1.1.0")
    capsys.readouterr()
    assert project.run("check") == 1
    assert "without any change" in capsys.readouterr().out


def test_excessive_bump_fails(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert project.run("lock") == 0
    project.write_proto("2.0.0", extra=" string note = 2;")
    capsys.readouterr()
    assert project.run("check") == 1
    out = capsys.readouterr().out
    assert "only requires MINOR" in out and "field-added" in out
    project.write_proto("1.1.0", extra=" string note = 2;")
    assert project.run("lock") == 0


def test_contract_change_checked_in_json_schema_avro_and_asyncapi(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert project.run("lock") == 0
    project.write_contracts("1.0.0", extra="    kitchen: str")  # new required field, no bump
    capsys.readouterr()
    assert project.run("check") == 1
    out = capsys.readouterr().out
    assert "jsonschema:kitchen.TicketCreated@1" in out
    assert "message-property-added-required" in out
    assert "field-added-without-default" in out
    project.write_contracts("1.1.0", extra='    kitchen: str = "main"')  # optional: MINOR
    assert project.run("check") == 1  # the AsyncAPI entry changed too, still at 1.0.0
    assert "asyncapi:" in capsys.readouterr().out


def test_removed_api_needs_force(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert project.run("lock") == 0
    (project.root / "protos" / "kitchen.proto").unlink()
    (project.root / "protos" / "other.proto").write_text(PROTO.format(version="1.0.0", extra=""))
    assert project.run("check") == 1
    assert project.run("lock") == 1
    assert "no longer published" in capsys.readouterr().out
    assert project.run("lock", "--force") == 0
    assert project.run("check") == 0


def test_unreadable_config_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.servicewire.api]\nopenapi = ["missing/*.yaml"]\n'
    )
    assert main(["api", "check", "--project", str(tmp_path)]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_fastapi_app_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.servicewire.api]\nopenapi = ["servicewire.rest.example:app"]\n'
    )
    assert main(["api", "lock", "--project", str(tmp_path)]) == 0
    lock = json.loads((tmp_path / "api.lock.json").read_text())
    [entry] = lock["apis"].values()
    assert entry["kind"] == "openapi" and entry["document"]["openapi"].startswith("3.")
    assert main(["api", "check", "--project", str(tmp_path)]) == 0


def test_proto_package_major_must_match_version(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert project.run("lock") == 0
    # A breaking edit to kitchen.v1 declared as 2.0.0: gRPC clients bind to the
    # package, so a new major must be a new package (kitchen.v2), side by side.
    text = PROTO.format(version="2.0.0", extra="").replace("string id = 1;", "int64 id = 1;")
    (project.root / "protos" / "kitchen.proto").write_text(text)
    capsys.readouterr()
    assert project.run("check") == 1
    assert "a new major is a new package (kitchen.v2)" in capsys.readouterr().out


def test_proto_json_name_declarations_survive_the_lock(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """protoc fills every json_name; the lock records which ones the source spells out."""
    assert project.run("lock") == 0
    lock = json.loads((project.root / "api.lock.json").read_text())
    assert lock["apis"]["proto:protos/kitchen.proto"]["document"]["json_names_declared"] == []
    path = project.root / "protos" / "kitchen.proto"
    text = PROTO.format(version="1.0.0", extra="")
    path.write_text(
        text.replace("Ticket { string id = 1;", 'Ticket { string id = 1 [json_name = "id"];')
    )
    capsys.readouterr()
    assert project.run("check") == 1
    out = capsys.readouterr().out
    assert "field-json-name-declared" in out and "PATCH" in out
    path.write_text(path.read_text().replace("api-version: 1.0.0", "api-version: 1.0.1"))
    assert project.run("lock") == 0
    lock = json.loads((project.root / "api.lock.json").read_text())
    entry = lock["apis"]["proto:protos/kitchen.proto"]["document"]
    assert entry["json_names_declared"] == ["Ticket.id"]
    del entry["json_names_declared"]  # a lock written before declarations were recorded
    (project.root / "api.lock.json").write_text(json.dumps(lock))
    path.write_text(text.replace("api-version: 1.0.0", "api-version: 1.0.1"))
    capsys.readouterr()
    assert project.run("check") == 1  # text changed: still seen, as documentation
    assert "field-json-name-declared" not in capsys.readouterr().out
