"""The two sign-in flows, each in two steps over a row of ``oidc_pending``:

- browser (authorization code with PKCE): :func:`start_web_sign_in` stores state, nonce
  and PKCE verifier and gives the provider's URL; :func:`finish_web_sign_in` takes the
  row by its state (once: a replayed or forged state finds nothing), exchanges the code
  and checks the ID token;
- CLI (device authorization grant, RFC 8628): :func:`start_device_sign_in` asks the
  provider for a device and user code and gives the CLI a random handle for the row;
  :func:`poll_device_sign_in` polls the provider's token endpoint for it.

The portal commits the taking of a state (:func:`take_web_sign_in`) before it goes on,
so that a sign-in that fails afterwards cannot be retried with the same state.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rechenwerk.access.models import User
from rechenwerk.access.oidc.claims import MissingClaim, map_claims
from rechenwerk.access.oidc.models import OidcPending
from rechenwerk.access.oidc.provider import (
    ProviderClient,
    TokenResponse,
    new_secret,
    refused,
)
from rechenwerk.access.oidc.service import SignedIn, sign_in
from rechenwerk.clock import ensure_utc
from rechenwerk.config import OidcProvider, Settings
from rechenwerk.errors import NotFound, ServiceUnavailable, Unauthenticated

log = logging.getLogger("rechenwerk.oidc")

WEB_SIGN_IN_TTL = timedelta(minutes=10)
DEVICE_MAX_TTL = timedelta(minutes=30)
CALLBACK_PATH = "/login/oidc/callback"


def provider_named(settings: Settings, name: str | None) -> OidcProvider:
    """The configured provider ``name`` (or the only one when ``name`` is None)."""
    providers = settings.oidc_providers
    if not providers:
        raise NotFound("no sign-in provider is configured on this server",
                       hint="Log in with a password or an API token.")
    if name is None:
        if len(providers) > 1:
            names = ", ".join(p.name for p in providers)
            raise NotFound(f"several sign-in providers are configured: name one of {names}",
                           field="provider")
        return providers[0]
    for p in providers:
        if p.name == name:
            return p
    raise NotFound(f"sign-in provider {name!r} not found", field="provider",
                   hint="Known: " + ", ".join(p.name for p in providers))


def _hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


# Sign-ins are started before anyone is authenticated: a bound on those under way keeps
# a flood of start requests from filling the table (or hammering the provider).
MAX_PENDING = 10_000


def _prune(session: Session, now: datetime) -> None:
    """Forget ended sign-ins; refuse a new one while too many are under way."""
    session.execute(delete(OidcPending).where(OidcPending.expires_at <= now))
    under_way = session.scalar(select(func.count()).select_from(OidcPending)) or 0
    if under_way >= MAX_PENDING:
        log.warning("oidc sign-in refused: reason=%d sign-ins under way", under_way)
        raise ServiceUnavailable("too many sign-ins are under way",
                                 hint="Try again in a few minutes.")


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    provider: str
    nonce: str
    code_verifier: str
    next_url: str
    link_user_id: int | None
    expires_at: datetime


def _take(session: Session, handle: str, kind: str) -> PendingSignIn | None:
    """Delete the row of ``handle`` and return it; None when there is none (never
    created, expired and pruned, or taken already: one statement, so of two concurrent
    takers only one gets it)."""
    t = OidcPending
    stmt = (delete(t).where(t.handle_hash == _hash(handle), t.kind == kind)
            .returning(t.provider, t.nonce, t.code_verifier, t.next_url, t.link_user_id,
                       t.expires_at))
    row = session.execute(stmt).one_or_none()
    if row is None:
        return None
    return PendingSignIn(row.provider, row.nonce, row.code_verifier, row.next_url,
                  row.link_user_id, ensure_utc(row.expires_at))


def _stale(what: str) -> Unauthenticated:
    log.warning("oidc sign-in refused: reason=%s", what)
    return Unauthenticated("this sign-in has expired or was already used",
                           hint="Start the sign-in again.")


# ------------------------------------------------------------------ browser


def start_web_sign_in(session: Session, provider: OidcProvider, *, redirect_uri: str,
                      next_url: str, link_user: User | None, now: datetime) -> tuple[str, str]:
    """The provider's authorization URL and the state (for the browser's cookie)."""
    _prune(session, now)
    client = ProviderClient(provider)
    state, nonce, verifier = new_secret(), new_secret(), new_secret()
    url = client.authorization_url(redirect_uri=redirect_uri, state=state, nonce=nonce,
                                   code_verifier=verifier)
    session.add(OidcPending(handle_hash=_hash(state), kind="web", provider=provider.name,
                            nonce=nonce, code_verifier=verifier, device_code="",
                            next_url=next_url[:500],
                            link_user_id=link_user.id if link_user else None,
                            created_at=now, expires_at=now + WEB_SIGN_IN_TTL))
    session.flush()
    return url, state


@dataclass(frozen=True, slots=True)
class WebSignIn:
    signed_in: SignedIn
    next_url: str
    linked: bool


def take_web_sign_in(session: Session, *, state: str, now: datetime) -> PendingSignIn:
    """The sign-in of ``state``, removed (the caller commits that at once)."""
    taken = _take(session, state, "web")
    if taken is None:
        raise _stale("unknown or reused state")
    if taken.expires_at <= now:
        raise _stale("state expired")
    return taken


def discard_web_sign_in(session: Session, *, state: str) -> None:
    """Forget the sign-in of ``state`` (the provider answered with an error)."""
    _take(session, state, "web")


def password_login_allowed(settings: Settings, user: User) -> None:
    """Setting ``local_login = "operators"``: local passwords are the operators'
    break-glass access only; everyone else signs in through a provider."""
    if settings.local_login == "operators" and not user.is_operator:
        names = ", ".join(p.display_name for p in settings.oidc_providers) or "a provider"
        raise Unauthenticated(f"password login is for operators only here: sign in with "
                              f"{names}", hint="CLI: rechenwerk login --sso")


def finish_web_sign_in(session: Session, settings: Settings, taken: PendingSignIn, *, code: str,
                       redirect_uri: str, now: datetime) -> WebSignIn:
    provider = provider_named(settings, taken.provider)
    client = ProviderClient(provider)
    tokens = client.exchange_code(code=code, redirect_uri=redirect_uri,
                                  code_verifier=taken.code_verifier)
    link_user = session.get(User, taken.link_user_id) if taken.link_user_id else None
    signed = _sign_in(session, client, tokens, nonce=taken.nonce, now=now,
                      link_user=link_user)
    return WebSignIn(signed, taken.next_url, link_user is not None)


def _sign_in(session: Session, client: ProviderClient, tokens: TokenResponse, *,
             nonce: str | None, now: datetime, link_user: User | None) -> SignedIn:
    claims = client.claims_of(tokens, now=now, nonce=nonce)
    try:
        granted = map_claims(client.config, claims)
    except MissingClaim as exc:
        raise refused(client.config, f"the provider did not send the claim "
                      f"{exc.claim!r}, which this centre needs") from None
    return sign_in(session, client.config, granted, now=now, link_user=link_user)


# ------------------------------------------------------------------ device


def start_device_sign_in(session: Session, provider: OidcProvider, *, now: datetime,
                         link_user: User | None = None) -> dict[str, Any]:
    """What the CLI shows and polls with: handle, user_code, verification_uri(_complete),
    interval, expires_in. ``link_user``: the local account (whose password the caller
    checked) that the provider account is to be linked to."""
    _prune(session, now)
    answer = ProviderClient(provider).start_device()
    try:
        expires_in = min(int(answer.get("expires_in", 600)),
                         int(DEVICE_MAX_TTL.total_seconds()))
        interval = max(1, int(answer.get("interval", 5)))
        user_code, uri = str(answer["user_code"]), str(answer["verification_uri"])
    except (KeyError, TypeError, ValueError):
        raise refused(provider, "the provider's device authorization answer is "
                      "incomplete") from None
    handle = new_secret()
    session.add(OidcPending(handle_hash=_hash(handle), kind="device",
                            provider=provider.name, nonce="", code_verifier="",
                            device_code=str(answer["device_code"]), next_url="",
                            link_user_id=link_user.id if link_user else None, created_at=now,
                            expires_at=now + timedelta(seconds=expires_in)))
    session.flush()
    return {"handle": handle, "provider": provider.name, "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": answer.get("verification_uri_complete"),
            "interval": interval, "expires_in": expires_in}


def poll_device_sign_in(session: Session, settings: Settings, *, handle: str,
                        now: datetime) -> SignedIn | str:
    """The signed-in user once the person confirmed at the provider, or the state to
    wait in: "authorization_pending" or "slow_down"."""
    row = session.scalars(select(OidcPending).where(
        OidcPending.handle_hash == _hash(handle), OidcPending.kind == "device")).first()
    if row is None:
        raise _stale("unknown or used device handle")
    device_code, provider_name, expires_at = row.device_code, row.provider, row.expires_at
    link_user_id = row.link_user_id
    if expires_at <= now:
        _take(session, handle, "device")
        raise _stale("device sign-in expired")
    provider = provider_named(settings, provider_name)
    client = ProviderClient(provider)
    try:
        result = client.poll_device(device_code)
    except Unauthenticated:  # denied, expired at the provider, ...: this handle is done
        _take(session, handle, "device")
        raise
    if isinstance(result, str):
        return result
    if _take(session, handle, "device") is None:  # another poll got the tokens first
        raise _stale("device handle used concurrently")
    link_user = session.get(User, link_user_id) if link_user_id else None
    return _sign_in(session, client, result, nonce=None, now=now, link_user=link_user)
