"""The portal under test: a real uvicorn server in a thread (scheduler loop, local
executor and notifier running) over a SQLite database migrated with Alembic and loaded
with the demo centre plus job history, and Debian's chromium driven by Playwright.

Browser tests skip with a clear message when /usr/bin/chromium or Playwright is missing.
Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from portal_data import load_portal_demo

from waiting import wait_for


@dataclass
class Portal:
    url: str
    tokens: dict[str, str]  # demo username -> API token
    app: Any
    data_dir: Path

    def api(self, method: str, path: str, user: str, **kw: Any) -> Any:
        import httpx

        return httpx.request(method, self.url + path, timeout=30,
                             headers={"Authorization": f"Bearer {self.tokens[user]}"}, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    import uvicorn

    from rechenwerk.app import create_app
    from rechenwerk.config import Settings
    from rechenwerk.store.migrate import upgrade
    from rechenwerk.store.session import make_engine, make_session_factory, session_scope

    tmp = tmp_path_factory.mktemp("portal")
    db_url = f"sqlite:///{tmp / 'rechenwerk.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as session:
        demo = load_portal_demo(session, now=datetime.now(UTC))
    engine.dispose()
    # Jobs run sandboxed (the default where bubblewrap works): tests signal them through
    # files in this folder, shown to every job read-only.
    shared = tmp / "shared"
    shared.mkdir(mode=0o755)
    settings = Settings(data_dir=tmp / "var", database_url=db_url, scheduler_enabled=True,
                        local_sandbox_ro=str(shared),
                        scheduler_interval_s=0.5, local_cluster="2x4:A100-80GB",
                        forecast_interval_s=0.5,
                        secret_key=secrets.token_hex(16), kill_grace_s=2.0)
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="portal-test-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the portal test server died while starting"
        return bool(server.started)

    wait_for(started, "the portal test server to start")
    try:
        yield Portal(f"http://127.0.0.1:{port}", demo.tokens, app, tmp / "var")
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def new_page(browser: Any, portal: Portal) -> Iterator[Any]:
    """A factory of pages in fresh browser contexts (own cookies), 1280 px wide."""
    contexts: list[Any] = []

    def make() -> Any:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900},
                                  base_url=portal.url)
        ctx.set_default_timeout(60_000)  # a failure guard: a loaded CI machine is slow
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()
