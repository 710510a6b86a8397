"""Logging in to the portal in tests through the form (TestClient or httpx client):
the one password of test users, its hash (argon2 is slow: computed once), the form's
CSRF token. Use ``make_user(..., password_hash=password_hash())`` and ``login``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

PASSWORD = "correct-horse-battery"


@lru_cache(maxsize=1)
def password_hash() -> str:
    from rechenwerk.access.security import hash_password

    return hash_password(PASSWORD)


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client: Any, username: str, password: str = PASSWORD) -> Any:
    """Log ``username`` in (a fresh cookie jar); returns the client."""
    client.cookies.clear()
    page = client.get("/login")
    r = client.post("/login", data={"username": username, "password": password,
                                    "csrf_token": csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client
