"""The console's web app: one self-contained page and a small read-only JSON API.

    GET  /                              the page (HTML, CSS and JS inline; no external assets)
    GET  /api/overview                  services, outbox backlog per database, relay lag,
                                        dead letters, recent conversations
    GET  /api/sequence/{id}             a conversation: {"svg", "text", "steps"}
    GET  /api/sequence/{id}.svg         the sequence diagram alone
    POST /api/dead-letters/replay       {"channel", "id", "confirm": id}: the only action

The page polls the overview (and the chosen sequence) every two seconds.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from servicewire.console.data import ConsoleState


class ReplayRequest(BaseModel):
    channel: str
    id: str
    confirm: str
    """Must repeat ``id``: a replay is never one accidental request away."""


def page() -> str:
    return resources.files("servicewire.console").joinpath("page.html").read_text("utf-8")


def create_console_app(state: ConsoleState) -> FastAPI:
    """The console app over ``state`` (started and stopped by the caller)."""
    app = FastAPI(title="Servicewire console", docs_url=None, redoc_url=None, openapi_url=None)
    html = page()

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/api/overview")
    async def overview() -> dict[str, Any]:
        return await state.overview()

    @app.get("/api/sequence/{key}.svg")
    async def sequence_svg(key: str) -> Response:
        svg, _text, _steps = await state.sequence(key)
        return Response(svg, media_type="image/svg+xml")

    @app.get("/api/sequence/{key}")
    async def sequence(key: str) -> dict[str, Any]:
        svg, text, steps = await state.sequence(key)
        return {"id": key, "svg": svg, "text": text, "steps": steps}

    @app.post("/api/dead-letters/replay")
    async def replay(request: ReplayRequest) -> dict[str, Any]:
        if request.confirm != request.id:
            raise HTTPException(400, "confirm must repeat the id of the message to replay")
        replayed = await state.replay(request.channel, request.id)
        if not replayed:
            raise HTTPException(404, f"no dead letter {request.id} on {request.channel}")
        return {"replayed": replayed, "id": request.id, "channel": request.channel}

    return app
