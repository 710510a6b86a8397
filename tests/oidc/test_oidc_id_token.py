"""The ID token checks on real tokens of the real test provider: a genuine token passes;
expired, tampered, re-keyed, foreign-audience, wrong-nonce and unsigned ones are refused
with their reason, for the user and in the operator's log line."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_helpers import CLIENT_ID, Centre, follow, provider_login

from rechenwerk.access.oidc.provider import ProviderClient, TokenResponse, new_secret
from rechenwerk.config import OidcProvider
from rechenwerk.errors import Unauthenticated

pytestmark = [pytest.mark.oidc, pytest.mark.xdist_group("oidc")]


def _config(centre: Centre, **changes: str) -> OidcProvider:
    return OidcProvider(**{"name": "testaai", "display_name": "Test AAI",
                           "issuer": centre.provider.issuer, "client_id": CLIENT_ID,
                           "client_secret": centre.provider.client_secret,
                           "scopes": ["openid", "email", "eduperson_entitlement"],
                           **changes})


@pytest.fixture
def real_token(centre: Centre) -> tuple[TokenResponse, str]:
    """A genuine ID token for ada (code flow with PKCE, by hand) and its nonce."""
    client = ProviderClient(_config(centre))
    redirect = centre.url + "/login/oidc/callback"
    state, nonce, verifier = new_secret(), new_secret(), new_secret()
    with httpx.Client(timeout=30) as http:
        login = follow(http, http.get(client.authorization_url(
            redirect_uri=redirect, state=state, nonce=nonce, code_verifier=verifier)))
        back = follow(http, provider_login(http, login, "ada", "ada-provider-pw"),
                      stop=redirect)
    query = parse_qs(urlsplit(back.headers["location"]).query)
    assert query["state"] == [state]
    return client.exchange_code(code=query["code"][0], redirect_uri=redirect,
                                code_verifier=verifier), nonce


def _parts(token: str) -> list[str]:
    return token.split(".")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _refused(call: object, reason: str, caplog: pytest.LogCaptureFixture,
             level: int = logging.WARNING) -> None:
    with caplog.at_level(level, logger="rechenwerk.oidc"), \
            pytest.raises(Unauthenticated) as err:
        call()  # type: ignore[operator]
    assert reason in err.value.message
    assert err.value.message.startswith("sign-in with Test AAI failed: ")
    assert any("oidc sign-in refused: provider=testaai reason=" in r.getMessage()
               and reason in r.getMessage() for r in caplog.records)


def test_a_genuine_token_passes_with_the_userinfo_claims(
        centre: Centre, real_token: tuple[TokenResponse, str]) -> None:
    tokens, nonce = real_token
    claims = ProviderClient(_config(centre)).claims_of(tokens, now=datetime.now(UTC),
                                                       nonce=nonce)
    assert claims["sub"] == "ada" and claims["iss"] == centre.provider.issuer
    # entitlements come from the userinfo endpoint, as at Helmholtz AAI or MyAccessID
    assert any("nordlicht-llm" in e for e in claims["eduperson_entitlement"])


def test_expired_token(centre: Centre, real_token: tuple[TokenResponse, str],
                       caplog: pytest.LogCaptureFixture) -> None:
    tokens, nonce = real_token
    exp = json.loads(_unb64(_parts(tokens.id_token)[1]))["exp"]
    later = datetime.fromtimestamp(exp, UTC) + timedelta(minutes=2)
    client = ProviderClient(_config(centre))
    _refused(lambda: client.validate_id_token(tokens.id_token, now=later, nonce=nonce),
             "the ID token has expired", caplog)


def test_bad_signature(centre: Centre, real_token: tuple[TokenResponse, str],
                       caplog: pytest.LogCaptureFixture) -> None:
    tokens, nonce = real_token
    header, payload, signature = _parts(tokens.id_token)
    raw = bytearray(_unb64(signature))
    raw[10] ^= 0xFF
    client = ProviderClient(_config(centre))
    _refused(lambda: client.validate_id_token(f"{header}.{payload}.{_b64(bytes(raw))}",
                                              now=datetime.now(UTC), nonce=nonce),
             "the ID token's signature is not valid", caplog)
    # claims changed under the provider's signature: refused the same way
    claims = json.loads(_unb64(payload))
    claims["sub"] = "operator"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    _refused(lambda: client.validate_id_token(forged, now=datetime.now(UTC), nonce=nonce),
             "the ID token's signature is not valid", caplog)


def test_unknown_key_id_is_fetched_once_then_refused(
        centre: Centre, real_token: tuple[TokenResponse, str],
        caplog: pytest.LogCaptureFixture) -> None:
    tokens, nonce = real_token
    header, payload, signature = _parts(tokens.id_token)
    head = json.loads(_unb64(header))
    head["kid"] = "no-such-key"
    token = f"{_b64(json.dumps(head).encode())}.{payload}.{signature}"
    client = ProviderClient(_config(centre))
    _refused(lambda: client.validate_id_token(token, now=datetime.now(UTC), nonce=nonce),
             "the ID token is signed with an unknown key", caplog, logging.INFO)
    assert any("'no-such-key' not in the cached JWKS, fetching it again" in r.getMessage()
               for r in caplog.records)


def test_wrong_audience(centre: Centre, real_token: tuple[TokenResponse, str],
                        caplog: pytest.LogCaptureFixture) -> None:
    tokens, nonce = real_token
    other = ProviderClient(_config(centre, client_id="another-service"))
    _refused(lambda: other.validate_id_token(tokens.id_token, now=datetime.now(UTC),
                                             nonce=nonce),
             "the ID token is meant for another client", caplog)


def test_replayed_token_of_another_sign_in(centre: Centre,
                                           real_token: tuple[TokenResponse, str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    tokens, _ = real_token
    client = ProviderClient(_config(centre))
    _refused(lambda: client.validate_id_token(tokens.id_token, now=datetime.now(UTC),
                                              nonce=new_secret()),
             "the ID token's nonce does not belong to this sign-in", caplog)


def test_unsigned_token(centre: Centre, real_token: tuple[TokenResponse, str],
                        caplog: pytest.LogCaptureFixture) -> None:
    tokens, nonce = real_token
    payload = _parts(tokens.id_token)[1]
    token = f"{_b64(json.dumps({'alg': 'none'}).encode())}.{payload}."
    client = ProviderClient(_config(centre))
    _refused(lambda: client.validate_id_token(token, now=datetime.now(UTC), nonce=nonce),
             "signing algorithm 'none' is not allowed", caplog)


def test_a_used_code_is_refused_by_the_provider(centre: Centre,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The provider's side of replay protection: a code works once."""
    client = ProviderClient(_config(centre))
    redirect = centre.url + "/login/oidc/callback"
    state, nonce, verifier = new_secret(), new_secret(), new_secret()
    with httpx.Client(timeout=30) as http:
        login = follow(http, http.get(client.authorization_url(
            redirect_uri=redirect, state=state, nonce=nonce, code_verifier=verifier)))
        back = follow(http, provider_login(http, login, "ada", "ada-provider-pw"),
                      stop=redirect)
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    client.exchange_code(code=code, redirect_uri=redirect, code_verifier=verifier)
    _refused(lambda: client.exchange_code(code=code, redirect_uri=redirect,
                                          code_verifier=verifier),
             "the provider refused the token request (invalid_grant", caplog)
