"""Talking to one OpenID Provider: discovery, JWKS, the token and device endpoints, and
the checks of an ID token (OpenID Connect Core 1.0, 3.1.3.7).

The discovery document and the provider's keys are cached per process (they change
rarely); an ID token signed with a key id the cached JWKS does not hold makes one fresh
JWKS fetch (key rotation at the provider), and is refused if the key is still unknown.

Every refusal is an ``Unauthenticated`` (a provider that cannot be reached:
``ServiceUnavailable``) whose message the user sees, and one warning line with the
provider and the reason on the ``rechenwerk.oidc`` logger for the operator.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from rechenwerk.config import OidcProvider
from rechenwerk.errors import ServiceUnavailable, Unauthenticated

log = logging.getLogger("rechenwerk.oidc")

DISCOVERY_TTL_S = 3600.0
# Asymmetric algorithms only: "none" and HMAC (keyed with the client secret) are refused.
SIGNING_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                          "ES256", "ES384", "ES512", "EdDSA"})
CLOCK_SKEW_S = 60
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def refused(provider: OidcProvider, reason: str) -> Unauthenticated:
    """The error for a sign-in that fails a check, logged for the operator."""
    log.warning("oidc sign-in refused: provider=%s reason=%s", provider.name, reason)
    return Unauthenticated(f"sign-in with {provider.display_name} failed: {reason}",
                           hint="Try again; if it keeps failing, tell the centre's "
                                "operators the time and this message.")


def unreachable(provider: OidcProvider, what: str, exc: Exception | str) -> ServiceUnavailable:
    log.warning("oidc provider unreachable: provider=%s what=%s error=%s",
                provider.name, what, exc)
    return ServiceUnavailable(
        f"sign-in with {provider.display_name} is not possible now: the provider "
        f"does not answer ({what})",
        hint="Try again later, or sign in with another provider.")


@dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    device_authorization_endpoint: str | None


@dataclass(slots=True)
class _Cached:
    discovery: Discovery | None = None
    fetched_at: float = 0.0
    jwks: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_CACHE: dict[tuple[str, str], _Cached] = {}
_CACHE_LOCK = threading.Lock()


def forget_provider_caches() -> None:
    """Drop every cached discovery document and JWKS (tests; a changed configuration)."""
    with _CACHE_LOCK:
        _CACHE.clear()


@dataclass(frozen=True, slots=True)
class TokenResponse:
    id_token: str
    access_token: str


class ProviderClient:
    """One configured provider, with the process-wide cache of its documents."""

    def __init__(self, config: OidcProvider) -> None:
        self.config = config
        with _CACHE_LOCK:
            self._cached = _CACHE.setdefault((config.issuer, config.client_id), _Cached())

    # ---------------------------------------------------------------- HTTP
    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            with httpx.Client(timeout=self.config.timeout_s) as http:
                return http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.config, what, exc) from None

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise unreachable(self.config, what,
                              f"HTTP {response.status_code}, not a JSON object")
        return data

    # ---------------------------------------------------------------- documents
    def discovery(self) -> Discovery:
        cached = self._cached
        with cached.lock:
            if (cached.discovery is not None
                    and time.monotonic() - cached.fetched_at < DISCOVERY_TTL_S):
                return cached.discovery
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            response = self._request("GET", url, "discovery")
            if response.status_code != 200:
                raise unreachable(self.config, "discovery", f"HTTP {response.status_code}")
            doc = self._json(response, "discovery")
            # OpenID Connect Discovery 4.3: the document's issuer is the configured one.
            if doc.get("issuer") != self.config.issuer:
                raise refused(self.config, f"the provider's discovery document names the "
                              f"issuer {doc.get('issuer')!r}, configured is "
                              f"{self.config.issuer!r}")
            try:
                found = Discovery(
                    issuer=doc["issuer"],
                    authorization_endpoint=doc["authorization_endpoint"],
                    token_endpoint=doc["token_endpoint"], jwks_uri=doc["jwks_uri"],
                    userinfo_endpoint=doc.get("userinfo_endpoint"),
                    device_authorization_endpoint=doc.get("device_authorization_endpoint"))
            except KeyError as exc:
                raise unreachable(self.config, "discovery", f"no {exc.args[0]}") from None
            cached.discovery, cached.fetched_at = found, time.monotonic()
            return found

    def _fetch_jwks(self) -> dict[str, Any]:
        response = self._request("GET", self.discovery().jwks_uri, "JWKS")
        if response.status_code != 200:
            raise unreachable(self.config, "JWKS", f"HTTP {response.status_code}")
        jwks = self._json(response, "JWKS")
        self._cached.jwks = jwks
        return jwks

    def signing_keys(self, kid: str | None) -> KeySet:
        """The provider's keys holding ``kid``: from the cache, else fetched once more."""
        jwks = self._cached.jwks or self._fetch_jwks()
        if not _holds(jwks, kid):
            log.info("oidc provider=%s: key id %r not in the cached JWKS, fetching it again",
                     self.config.name, kid)
            jwks = self._fetch_jwks()
            if not _holds(jwks, kid):
                raise refused(self.config, f"the ID token is signed with an unknown key "
                              f"(key id {kid!r} is not in the provider's JWKS)")
        try:
            return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise unreachable(self.config, "JWKS", f"unusable keys: {exc}") from None

    # ---------------------------------------------------------------- flows
    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str,
                          code_verifier: str) -> str:
        """Where to send the browser: the code flow with PKCE (S256) and a nonce."""
        return str(prepare_grant_uri(
            self.discovery().authorization_endpoint, self.config.client_id, "code",
            redirect_uri=redirect_uri, scope=" ".join(self.config.scopes), state=state,
            nonce=nonce, code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256"))

    def _token_request(self, data: dict[str, str], what: str) -> dict[str, Any]:
        auth = ((self.config.client_id, self.config.client_secret)
                if self.config.client_secret else None)
        if auth is None:
            data = {**data, "client_id": self.config.client_id}
        response = self._request("POST", self.discovery().token_endpoint, what,
                                 data=data, auth=auth)
        body = self._json(response, what)
        if response.status_code != 200:
            body.setdefault("error", f"http_{response.status_code}")
        return body

    def exchange_code(self, *, code: str, redirect_uri: str,
                      code_verifier: str) -> TokenResponse:
        body = self._token_request({"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": redirect_uri,
                                    "code_verifier": code_verifier}, "token endpoint")
        return self._tokens(body)

    def _tokens(self, body: dict[str, Any]) -> TokenResponse:
        if "error" in body:
            raise refused(self.config, f"the provider refused the token request "
                          f"({body['error']}: {body.get('error_description', '')})")
        id_token, access = body.get("id_token"), body.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access, str):
            raise refused(self.config, "the provider's token response has no ID token")
        return TokenResponse(id_token=id_token, access_token=access)

    def start_device(self) -> dict[str, Any]:
        """RFC 8628 3.1-3.2: device_code, user_code, verification_uri(_complete),
        expires_in, interval."""
        endpoint = self.discovery().device_authorization_endpoint
        if not endpoint:
            raise refused(self.config, "the provider offers no device authorization "
                          "(no device_authorization_endpoint in its discovery document)")
        auth = ((self.config.client_id, self.config.client_secret)
                if self.config.client_secret else None)
        data = {"scope": " ".join(self.config.scopes)}
        if auth is None:
            data["client_id"] = self.config.client_id
        response = self._request("POST", endpoint, "device authorization", data=data,
                                 auth=auth)
        body = self._json(response, "device authorization")
        if response.status_code != 200 or "device_code" not in body:
            raise refused(self.config, f"the provider refused the device authorization "
                          f"({body.get('error', response.status_code)})")
        return body

    def poll_device(self, device_code: str) -> TokenResponse | str:
        """The tokens, or the RFC 8628 3.5 state: "authorization_pending" or "slow_down"."""
        body = self._token_request({"grant_type": DEVICE_GRANT,
                                    "device_code": device_code}, "token endpoint")
        if body.get("error") in ("authorization_pending", "slow_down"):
            return str(body["error"])
        return self._tokens(body)

    def userinfo(self, access_token: str) -> dict[str, Any]:
        endpoint = self.discovery().userinfo_endpoint
        if not endpoint:
            return {}
        response = self._request("GET", endpoint, "userinfo",
                                 headers={"Authorization": f"Bearer {access_token}"})
        if response.status_code != 200:
            raise refused(self.config, f"the provider's userinfo endpoint answered HTTP "
                          f"{response.status_code}")
        return self._json(response, "userinfo")

    # ---------------------------------------------------------------- ID token
    def validate_id_token(self, id_token: str, *, now: datetime,
                          nonce: str | None) -> dict[str, Any]:
        """The ID token's claims after every check of OIDC Core 3.1.3.7: signature by a
        key of the provider (asymmetric algorithm), issuer, audience (and azp), expiry,
        issue time, and the nonce of this sign-in (``None``: a flow without nonce, the
        device flow; then the token must carry none)."""
        cfg = self.config
        try:
            header = jws.extract_compact(id_token.encode()).protected
        except (JoseError, ValueError) as exc:
            raise refused(cfg, f"the ID token is malformed ({exc})") from None
        alg = header.get("alg")
        if alg not in SIGNING_ALGS:
            raise refused(cfg, f"the ID token's signing algorithm {alg!r} is not allowed")
        keys = self.signing_keys(header.get("kid"))
        try:
            claims = jwt.decode(id_token, keys, algorithms=[alg]).claims
        except BadSignatureError:
            raise refused(cfg, "the ID token's signature is not valid") from None
        except (JoseError, ValueError) as exc:
            raise refused(cfg, f"the ID token cannot be verified ({exc})") from None
        if claims.get("iss") != cfg.issuer:
            raise refused(cfg, f"the ID token's issuer {claims.get('iss')!r} is not "
                          f"{cfg.issuer!r}")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if cfg.client_id not in audiences:
            raise refused(cfg, f"the ID token is meant for another client (audience "
                          f"{aud!r})")
        if len(audiences) > 1 and claims.get("azp") != cfg.client_id:
            raise refused(cfg, "the ID token has several audiences and another azp")
        stamp = now.timestamp()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise refused(cfg, "the ID token has no expiry or issue time")
        if exp + CLOCK_SKEW_S <= stamp:
            raise refused(cfg, "the ID token has expired")
        if iat - CLOCK_SKEW_S > stamp:
            raise refused(cfg, "the ID token was issued in the future (check the clocks)")
        if claims.get("nonce") != nonce:
            raise refused(cfg, "the ID token's nonce does not belong to this sign-in "
                          "(replayed or mixed-up response)")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise refused(cfg, "the ID token has no subject (sub)")
        return dict(claims)

    def claims_of(self, tokens: TokenResponse, *, now: datetime,
                  nonce: str | None) -> dict[str, Any]:
        """The ID token's claims (checked) merged with the userinfo endpoint's, whose
        ``sub`` must be the same (OIDC Core 5.3.2): many providers (Helmholtz AAI,
        MyAccessID) send entitlements only there."""
        claims = self.validate_id_token(tokens.id_token, now=now, nonce=nonce)
        info = self.userinfo(tokens.access_token)
        if info:
            if info.get("sub") != claims["sub"]:
                raise refused(self.config, "the userinfo answer is about another subject")
            claims = {**info, **claims}
        return claims


def _holds(jwks: dict[str, Any], kid: str | None) -> bool:
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return False
    if kid is None:
        return len(keys) > 0
    return any(isinstance(k, dict) and k.get("kid") == kid for k in keys)


def new_secret() -> str:
    return str(generate_token(48))
