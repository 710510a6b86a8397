"""``rechenwerk login --sso``: the OAuth 2.0 device authorization grant (RFC 8628)
through the Rechenwerk server, which talks to the provider and answers with a new API
token once the person confirmed the code in a browser (any machine)."""

from __future__ import annotations

import socket
import sys
import time

from rechenwerk.cli.client import api_client, call
from rechenwerk.cli.output import console
from rechenwerk.errors import Unauthenticated

SLOW_DOWN_S = 5  # RFC 8628 3.5: add this to the interval on "slow_down"


def device_sign_in(base: str, provider: str | None, *, link_username: str | None = None,
                   link_password: str | None = None) -> str:
    """The secret of a new API token, after the person signed in at the provider; with
    ``link_username`` (and that account's password) the provider account is linked to it."""
    body: dict[str, str | None] = {"provider": provider}
    if link_username:
        body |= {"link_username": link_username, "link_password": link_password}
    with api_client(url=base, token=None) as http:
        started = call("POST", "/api/v1/auth/oidc/device", client=http, json=body)
        console.print(f"To sign in, open {started['verification_uri']} in a browser "
                      "and enter the code:", highlight=False)
        console.print(f"code: {started['user_code']}", highlight=False)
        if started.get("verification_uri_complete"):
            console.print(f"(or open {started['verification_uri_complete']})",
                          highlight=False)
        sys.stdout.flush()  # the code must show before the wait, also through a pipe
        interval = int(started["interval"])
        deadline = time.monotonic() + int(started["expires_in"])
        name = f"cli-sso@{socket.gethostname()}"[:100]
        while time.monotonic() < deadline:
            time.sleep(interval)  # the provider's polling interval (RFC 8628 3.5)
            polled = call("POST", "/api/v1/auth/oidc/device/poll", client=http,
                          json={"handle": started["handle"], "name": name})
            if polled["status"] == "done":
                return str(polled["token"]["token"])
            if polled["status"] == "slow_down":
                interval += SLOW_DOWN_S
    raise Unauthenticated("the code was not confirmed in time",
                          hint="Run `rechenwerk login --sso` again.")
