"""Federated sign-in against a real OpenID Provider: panva's certified ``oidc-provider``
from npm (``tests/oidc_provider/``), run with Node.js on a loopback port, and a real
Rechenwerk server (uvicorn in a thread, SQLite migrated with Alembic, the demo centre)
configured with it. Tests marked ``oidc`` skip with the reason when node is absent.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from oidc_helpers import (
    CLIENT_ID,
    ENTITLEMENT,
    PROVIDER_DIR,
    UNI_NORD,
    Centre,
    OidcProviderProcess,
    free_port,
    new_signing_key,
    node_ready,
)

from waiting import wait_for


@pytest.fixture(scope="session")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    reason = node_ready()
    if reason:
        pytest.skip(reason)
    import uvicorn

    from rechenwerk.access.demo import load_demo
    from rechenwerk.app import create_app
    from rechenwerk.config import OidcProvider, Settings
    from rechenwerk.store.migrate import upgrade
    from rechenwerk.store.session import make_engine, make_session_factory, session_scope

    tmp = tmp_path_factory.mktemp("oidc")
    op_port, rw_port = free_port(), free_port()
    url = f"http://127.0.0.1:{rw_port}"
    provider = OidcProviderProcess(op_port, tmp, url + "/login/oidc/callback",
                                   [new_signing_key("first")])
    shutil.copy(PROVIDER_DIR / "accounts.json", provider.accounts_file)
    provider.start()

    db_url = f"sqlite:///{tmp / 'rechenwerk.db'}"
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as session:
        demo = load_demo(session, now=datetime.now(UTC))
    engine.dispose()
    common = {"client_id": CLIENT_ID, "client_secret": provider.client_secret,
              "scopes": ["openid", "email", "profile", "eduperson_entitlement",
                         "schac_home_organization"],
              "organization_claim": "schac_home_organization",
              "organizations": {"uni-nord.example": UNI_NORD},
              "membership_entitlement": ENTITLEMENT,
              "reviewer_entitlements": [r"urn:geant:rechenwerk\.example:group:reviewers"
                                        r"#aai\.example"],
              "operator_entitlements": [r"urn:geant:rechenwerk\.example:group:operators"
                                        r"#aai\.example"]}
    settings = Settings(
        data_dir=tmp / "var", database_url=db_url, scheduler_enabled=False,
        secret_key=secrets.token_hex(16), public_url=url,
        oidc_providers=[
            OidcProvider(name="testaai", display_name="Test AAI", issuer=provider.issuer,
                         **common),
            # The same provider under a name it does not have (discovery names another).
            OidcProvider(name="wrongiss", display_name="Wrong Issuer",
                         issuer=f"http://localhost:{op_port}", **common),
            OidcProvider(name="down", display_name="Down AAI", timeout_s=5,
                         issuer=f"http://127.0.0.1:{free_port()}", **common),
        ])
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=rw_port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="oidc-test-server", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the Rechenwerk test server died while starting"
        return bool(server.started)

    wait_for(started, "the Rechenwerk test server to start")
    try:
        yield Centre(url, provider, app, db_url, demo.tokens)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        provider.stop()




@pytest.fixture(scope="session")
def chromium(browser: Any) -> Any:
    """The one Debian chromium of the test process (tests/conftest.py ``browser``)."""
    return browser
