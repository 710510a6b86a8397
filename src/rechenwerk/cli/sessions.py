"""``rechenwerk session start|list|show|stop``: interactive JupyterLab sessions through the
REST API (``/api/v1/sessions``). A session opens in the browser, through the portal, at
the URL these commands print (docs/jobs.md, "Interactive sessions")."""

from __future__ import annotations

import time
from typing import Any

import typer

from rechenwerk.cli.output import console, handle_errors, print_json, print_table
from rechenwerk.errors import BackendError

BASE = "/api/v1/sessions"
JSON_OPT = typer.Option(False, "--json", help="Print JSON.")
ENDED = ("completed", "failed", "cancelled", "timeout")


def _call(method: str, path: str, **kw: Any) -> Any:
    from rechenwerk.cli.client import call

    return call(method, path, **kw)


def _base_url() -> str:
    from rechenwerk.cli.client import load_credentials

    return load_credentials().url.rstrip("/")


def _line(s: dict[str, Any]) -> str:
    where = (f"open {_base_url()}{s['url']}" if s["ready"]
             else "ended" if s["state"] in ENDED
             else "JupyterLab is starting" if s["state"] in ("starting", "running")
             else f"waiting: {s['reason'] or 'queued'}")
    return (f"session {s['id']} ({s['project']}, {s['gpus']} GPU"
            f"{'s' if s['gpus'] != 1 else ''}): {s['state']}; {where}")


def _wait_ready(session_id: int, timeout_s: float) -> dict[str, Any]:
    """Poll until the session can be opened or has ended (a user watches: no busy loop)."""
    deadline = time.monotonic() + timeout_s
    with console.status(f"waiting for session {session_id} to start JupyterLab"):
        while True:
            s: dict[str, Any] = _call("GET", f"{BASE}/{session_id}")
            if s["ready"] or s["state"] in ENDED:
                return s
            if time.monotonic() > deadline:
                raise BackendError(
                    f"session {session_id} is not ready after {timeout_s:g} s ({s['state']}: "
                    f"{s['reason'] or 'queued'})",
                    hint=f"It keeps its place: rechenwerk session show {session_id} later.")
            time.sleep(1.0)


def register(app: typer.Typer) -> None:
    ses = typer.Typer(help="Interactive JupyterLab sessions on GPUs, opened in the browser.",
                      no_args_is_help=True)
    app.add_typer(ses, name="session")

    @ses.command("start")
    @handle_errors
    def start(
        project: str = typer.Option(..., "--project", "-p", help="The project to charge."),
        gpus: int = typer.Option(1, "--gpus", "-g", min=1, help="GPUs for the session."),
        walltime: str = typer.Option("2h", "--walltime", "-t", help="e.g. 90m, 2h, 1-00:00:00"),
        gpu_type: str | None = typer.Option(None, "--gpu-type"),
        qos: str = typer.Option("normal", "--qos"),
        workdir: str | None = typer.Option(
            None, "--workdir", help="JupyterLab's folder (absolute path on the node)."),
        wait: bool = typer.Option(False, "--wait", help="Wait until it can be opened."),
        timeout: float = typer.Option(600.0, "--timeout", min=1.0,
                                      help="Seconds --wait waits at most."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Start JupyterLab as a job of PROJECT; prints the URL to open."""
        body: dict[str, Any] = {"project": project, "gpus": gpus, "walltime": walltime,
                                "qos": qos}
        if gpu_type:
            body["gpu_type"] = gpu_type
        if workdir:
            body["workdir"] = workdir
        s: dict[str, Any] = _call("POST", BASE, json=body)
        if wait:
            s = _wait_ready(int(s["id"]), timeout)
        if as_json:
            print_json({**s, "open": f"{_base_url()}{s['url']}"})
            return
        console.print(_line(s), highlight=False)
        if not s["ready"] and s["state"] not in ENDED:
            console.print(f"  it opens at {_base_url()}{s['url']} once ready "
                          f"(rechenwerk session show {s['id']})", highlight=False)

    @ses.command("list")
    @handle_errors
    def list_(
        active: bool = typer.Option(False, "--active", help="Only sessions not yet ended."),
        as_json: bool = JSON_OPT,
    ) -> None:
        """Your sessions, newest first."""
        rows: list[dict[str, Any]] = _call("GET", BASE, params={"active": active})
        if as_json:
            print_json(rows)
            return
        base = _base_url()
        print_table(
            ["id", "project", "state", "GPUs", "walltime", "started (UTC)", "open"],
            [[s["id"], s["project"], s["state"], s["gpus"], f"{s['walltime_s'] // 60} min",
              (s["started_at"] or "")[:16].replace("T", " "),
              f"{base}{s['url']}" if s["ready"] else ""] for s in rows],
            title="Sessions")

    @ses.command("show")
    @handle_errors
    def show(session_id: int = typer.Argument(..., help="The session's id."),
             as_json: bool = JSON_OPT) -> None:
        """One of your sessions and where to open it."""
        s = _call("GET", f"{BASE}/{session_id}")
        if as_json:
            print_json(s)
        else:
            console.print(_line(s), highlight=False)

    @ses.command("stop")
    @handle_errors
    def stop(session_id: int = typer.Argument(..., help="The session's id."),
             as_json: bool = JSON_OPT) -> None:
        """Stop a session (JupyterLab and its kernels end; saved notebooks stay)."""
        s = _call("DELETE", f"{BASE}/{session_id}")
        if as_json:
            print_json(s)
        else:
            console.print(f"session {s['id']} is stopping ({s['state']}); it is charged "
                          "until it has ended", highlight=False)
