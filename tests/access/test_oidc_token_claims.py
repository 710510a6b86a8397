"""The ID token's claim checks that a real provider never gets wrong (issuer, several
audiences, issue time, subject, symmetric algorithms), on tokens signed here with a key
put into the client's JWKS cache: the provider tests (tests/oidc/) cover the rest with
real tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from rechenwerk.access.oidc.provider import (
    Discovery,
    ProviderClient,
    forget_provider_caches,
)
from rechenwerk.config import OidcProvider
from rechenwerk.errors import Unauthenticated

ISSUER = "https://aai.example/oauth2"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"}, private=True)


@pytest.fixture
def client() -> Iterator[ProviderClient]:
    forget_provider_caches()
    c = ProviderClient(OidcProvider(name="aai", display_name="AAI", issuer=ISSUER,
                                    client_id="rw"))
    # What discovery and the JWKS endpoint would have given (no provider runs here).
    c._cached.discovery = Discovery(ISSUER, ISSUER + "/authorize", ISSUER + "/token",
                                    ISSUER + "/jwks", None, None)
    c._cached.fetched_at = float("inf")
    c._cached.jwks = {"keys": [KEY.as_dict(private=False)]}
    yield c
    forget_provider_caches()


def token(**claims: Any) -> str:
    base = {"iss": ISSUER, "aud": "rw", "sub": "s-1", "nonce": "n",
            "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 300}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {**base, **claims}, KEY)


def refused(client: ProviderClient, value: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        client.validate_id_token(value, now=NOW, nonce="n")


def test_a_good_token_passes(client: ProviderClient) -> None:
    assert client.validate_id_token(token(), now=NOW, nonce="n")["sub"] == "s-1"
    assert client.validate_id_token(token(aud=["rw", "other"], azp="rw"), now=NOW,
                                    nonce="n")["azp"] == "rw"


@pytest.mark.parametrize("claims,reason", [
    ({"iss": "https://evil.example"}, "issuer 'https://evil.example' is not"),
    ({"aud": ["other", "rw"]}, "several audiences and another azp"),
    ({"aud": "other"}, "meant for another client"),
    ({"iat": int(NOW.timestamp()) + 3600}, "issued in the future"),
    ({"exp": int(NOW.timestamp()) - 120}, "has expired"),
    ({"sub": ""}, "no subject"),
    ({"nonce": None}, "nonce does not belong"),
])
def test_claims_that_are_refused(client: ProviderClient, claims: dict[str, Any],
                                 reason: str) -> None:
    refused(client, token(**claims), reason)


def test_symmetric_and_garbage_tokens_are_refused(client: ProviderClient) -> None:
    secret = OctKey.import_key("a-client-secret-anyone-at-the-client-knows-000")
    hs = jwt.encode({"alg": "HS256"}, {"iss": ISSUER, "aud": "rw", "sub": "x"}, secret)
    refused(client, hs, "algorithm 'HS256' is not allowed")
    refused(client, "not-a-jwt", "malformed")
