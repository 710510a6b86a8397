"""Static assets served by Rechenwerk itself (no CDN): CSS and the vendored htmx."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from rechenwerk.errors import NotFound
from rechenwerk.web.rendering import STATIC_DIR

router = APIRouter(include_in_schema=False)

_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
          ".png": "image/png", ".ico": "image/x-icon"}


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    # Only plain file names from the static folder: no paths, no dot-files.
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
        raise NotFound(f"static file {name!r} not found")
    return FileResponse(
        path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "public, max-age=3600"}
    )
