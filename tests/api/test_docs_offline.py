"""/docs and /redoc load everything from this server (air-gapped centres)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from rechenwerk.app import create_app
from rechenwerk.config import Settings


def test_docs_pages_use_only_local_assets(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/x.db",
                              scheduler_enabled=False))
    with TestClient(app) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?['"]([^'"]+)['"]""", html)
            flat = [u for pair in urls for u in pair if u]
            assert flat, page
            for url in flat:
                assert url.startswith("/"), (page, url)  # no CDN, no fonts from Google
                if url != "/openapi.json":
                    r = client.get(url)
                    assert r.status_code == 200 and len(r.content) > 1000, (page, url)
        assert "/docs-assets" not in client.get("/openapi.json").text
