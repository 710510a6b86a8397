"""The CLI's HTTP client: where the server is, which token to send, and how problem
responses turn back into :class:`~rechenwerk.errors.RechenwerkError` (so exit codes are
mapped once, in ``cli/output.py``).

Credentials come from ``rechenwerk login`` (``~/.config/rechenwerk/credentials.json``,
or ``$XDG_CONFIG_HOME/rechenwerk/credentials.json``), overridden by the environment
variables ``RECHENWERK_API_URL`` and ``RECHENWERK_TOKEN``. Without either, the CLI talks
to the server that wrote its address into the data directory (:func:`default_url`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rechenwerk import errors
from rechenwerk.errors import FieldIssue, RechenwerkError, ServiceUnavailable, Unauthenticated

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_S = 30.0

# Tests may route every client through another transport (e.g. an ASGI app).
_transport: httpx.BaseTransport | None = None


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str
    token: str | None


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rechenwerk" / "credentials.json"


def load_credentials() -> Credentials:
    stored: dict[str, Any] = {}
    path = credentials_path()
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise errors.InvalidInput(
                f"cannot read {path}: {exc}", hint="Run `rechenwerk login` again."
            ) from exc
    url = os.environ.get("RECHENWERK_API_URL") or stored.get("url") or default_url()
    token = os.environ.get("RECHENWERK_TOKEN") or stored.get("token")
    return Credentials(url=str(url).rstrip("/"), token=str(token) if token else None)


# ``rechenwerk server`` writes the address it serves on here (in its data directory), so
# the CLI on the same machine follows a server started on another port.
SERVER_ADDRESS_FILE = "server.json"


def default_url() -> str:
    """Where the server is when neither RECHENWERK_API_URL nor a login says: the address
    a local server wrote into its data directory, else RECHENWERK_HOST/RECHENWERK_PORT,
    else http://127.0.0.1:8000."""
    data_dir = Path(os.environ.get("RECHENWERK_DATA_DIR") or Path.cwd() / "var")
    try:
        path = data_dir / SERVER_ADDRESS_FILE
        st = path.stat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            # Someone else's file (e.g. planted in a shared folder the CLI runs in) could
            # send this user's token or password to a server of theirs.
            raise PermissionError(f"{path} is not this account's own")
        record = json.loads(path.read_text())
        url, pid = record.get("url"), record.get("pid")
        if (isinstance(url, str) and url.startswith(("http://", "https://"))
                and isinstance(pid, int) and _running(pid)):
            return url
    except (OSError, ValueError, AttributeError):
        pass  # no local server (or not readable): the settings decide
    port = os.environ.get("RECHENWERK_PORT")
    if port:
        return f"http://{url_host(os.environ.get('RECHENWERK_HOST') or '127.0.0.1')}:{port}"
    return DEFAULT_URL


def _running(pid: int) -> bool:
    """The server that wrote the address still runs (a killed one leaves its file)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def url_host(bind_host: str) -> str:
    """The host to connect to for a server bound to ``bind_host``."""
    if bind_host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind_host == "::":
        return "[::1]"
    return f"[{bind_host}]" if ":" in bind_host else bind_host


def save_credentials(url: str, token: str) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url.rstrip("/"), "token": token}, indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """Route all clients through ``transport`` (tests); None restores real HTTP."""
    global _transport
    _transport = transport


def api_client(url: str | None = None, token: str | None = None) -> httpx.Client:
    """An httpx client for the configured server, with the Bearer token when known."""
    creds = load_credentials()
    base = (url or creds.url).rstrip("/")
    secret = token or creds.token
    headers = {"Accept": "application/json"}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return httpx.Client(base_url=base, headers=headers, timeout=TIMEOUT_S,
                        transport=_transport)


def _error_classes() -> dict[str, type[RechenwerkError]]:
    found: dict[str, type[RechenwerkError]] = {}
    todo: list[type[RechenwerkError]] = [RechenwerkError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[RechenwerkError]] = {
    400: errors.InvalidInput, 401: errors.Unauthenticated, 402: errors.BudgetExceeded,
    403: errors.PermissionDenied, 404: errors.NotFound, 409: errors.Conflict,
    422: errors.InvalidInput, 502: errors.BackendError, 503: errors.ServiceUnavailable,
}


def error_from_response(response: httpx.Response) -> RechenwerkError:
    """The RechenwerkError a problem response stands for."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = str(body.get("code", ""))
    cls = _error_classes().get(code) or _BY_STATUS.get(response.status_code, RechenwerkError)
    issues = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            path = str(item.get("field", ""))
            loc = tuple(int(p) if p.isdigit() else p for p in path.split(".")) if path else ()
            issues.append(FieldIssue(loc, str(item.get("message", ""))))
    message = str(body.get("detail") or response.reason_phrase or f"HTTP {response.status_code}")
    field = issues[0].path if len(issues) == 1 else None
    return cls(
        message,
        hint=body.get("hint"),
        field=field,
        issues=issues if len(issues) > 1 else [],
    )


def call(
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    client: httpx.Client | None = None,
    content: bytes | None = None,
    content_type: str | None = None,
    raw: bool = False,
) -> Any:
    """Send one request; return the decoded JSON body (None for 204, the text of a CSV or
    HTML download, the bytes of a PDF or of any answer with ``raw``) or raise the matching
    RechenwerkError for a problem response. ``content``: a raw body (an upload) of
    ``content_type``."""
    own = client is None
    http = client or api_client()
    try:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            if content is not None:
                response = http.request(method, path, content=content, params=clean,
                                        headers={"Content-Type": content_type or
                                                 "application/octet-stream"})
            else:
                response = http.request(method, path, json=json, params=clean)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(
                f"cannot reach the Rechenwerk server at {http.base_url} ({exc})",
                hint="Start it with `rechenwerk server`, or point RECHENWERK_API_URL / "
                "`rechenwerk login --url` at it.",
            ) from exc
    finally:
        if own:
            http.close()
    if response.status_code >= 400:
        err = error_from_response(response)
        if isinstance(err, Unauthenticated) and not err.hint:
            err.hint = "Run `rechenwerk login` with a valid API token."
        raise err
    if raw:
        return response.content
    if response.status_code == 204 or not response.content:
        return None
    kind = response.headers.get("content-type", "")
    if kind.startswith(("text/csv", "text/html")):
        return response.text  # a CSV download (e.g. an account statement), a document
    if kind.startswith("application/pdf"):
        return response.content
    return response.json()
