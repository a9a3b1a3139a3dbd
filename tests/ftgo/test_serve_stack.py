"""``ftgo serve`` runs on the fast stack (uvloop, httptools), answers, and exits cleanly.

The ready line reports what the process actually runs on: the running loop's type and
the parser uvicorn was configured with. SQLite and the memory transport keep this fast;
the stack does not depend on the database or broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_serve_runs_on_uvloop_and_httptools_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ftgo.app.cli",
            "serve",
            "restaurant",
            "--db",
            f"sqlite:///{tmp_path / 'restaurant.db'}",
            "--transport",
            "memory://serve-stack",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        ready = ""
        for _ in range(50):  # bounded: log lines before the ready line
            ready = proc.stdout.readline().decode()
            if not ready or " ready " in ready:
                break
        assert " ready " in ready, proc.stderr.read().decode() if proc.stderr else ready
        assert "loop=uvloop" in ready.split() and "http-parser=httptools" in ready.split()
        url = next(w for w in ready.split() if w.startswith("http="))[5:]
        # A problem document from the app: the server parses and answers on this stack.
        assert status(f"{url}/v1/restaurants/none") == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
