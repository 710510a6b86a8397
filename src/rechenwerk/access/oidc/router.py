"""REST face of federated sign-in: the providers (for the login page and the CLI) and the
device flow the CLI drives (``rechenwerk login --sso``): start, then poll until the
person confirmed at the provider; the answer is a new Rechenwerk API token."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from rechenwerk.access import schemas as s
from rechenwerk.access import security
from rechenwerk.access.oidc import flows
from rechenwerk.api.deps import DbSession, Now, settings_of
from rechenwerk.errors import InvalidInput, TooManyAttempts, Unauthenticated

router = APIRouter(prefix="/api/v1/auth/oidc", tags=["access"])
log = logging.getLogger("rechenwerk.oidc")


class ProviderOut(BaseModel):
    name: str
    display_name: str
    issuer: str


class DeviceStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str | None = Field(default=None, max_length=32,
                                 description="name; may be omitted with one provider")
    # Linking the provider account to an existing local account: its password is the
    # proof (throttled and audited like every password login).
    link_username: str | None = Field(default=None, min_length=1, max_length=100)
    link_password: str | None = Field(default=None, min_length=1, max_length=1000)


class DeviceStarted(BaseModel):
    handle: str = Field(description="what the CLI polls with (secret)")
    provider: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: int
    expires_in: int


class DevicePoll(BaseModel):
    model_config = ConfigDict(extra="forbid")
    handle: str = Field(min_length=1, max_length=200)
    name: str = Field(default="cli-sso", min_length=1, max_length=100,
                      description="name of the API token to create")
    expires_in_days: float = Field(default=90, gt=0, le=3650)


class DevicePolled(BaseModel):
    status: Literal["authorization_pending", "slow_down", "done"]
    token: s.TokenCreated | None = None


@router.get("/providers", response_model=list[ProviderOut],
            summary="The configured OpenID Providers")
def providers(request: Request) -> list[ProviderOut]:
    return [ProviderOut(name=p.name, display_name=p.display_name, issuer=p.issuer)
            for p in settings_of(request).oidc_providers]


@router.post("/device", response_model=DeviceStarted,
             summary="Start a device sign-in (RFC 8628) at a provider")
def device_start(body: DeviceStart, request: Request, session: DbSession,
                 now: Now) -> DeviceStarted:
    provider = flows.provider_named(settings_of(request), body.provider)
    link_user = None
    if body.link_username is not None or body.link_password is not None:
        if not body.link_username or not body.link_password:
            raise InvalidInput("linking needs link_username and link_password",
                               field="link_password")
        try:
            link_user = security.login_with_password(
                session, body.link_username, body.link_password, now=now,
                source="oidc-link", address=request.client.host if request.client else None)
        except TooManyAttempts:
            raise
        except Unauthenticated:
            session.commit()  # keep the "login.failed" audit entry
            raise
    return DeviceStarted(**flows.start_device_sign_in(session, provider, now=now,
                                                      link_user=link_user))


@router.post("/device/poll", response_model=DevicePolled,
             summary="Poll a device sign-in; once confirmed, a new API token")
def device_poll(body: DevicePoll, request: Request, session: DbSession,
                now: Now) -> DevicePolled:
    result = flows.poll_device_sign_in(session, settings_of(request), handle=body.handle,
                                       now=now)
    if isinstance(result, str):
        return DevicePolled(status="slow_down" if result == "slow_down"
                            else "authorization_pending")
    user = result.user
    token, secret = security.create_token(
        session, user, name=body.name, now=now,
        expires_at=now + timedelta(days=body.expires_in_days), actor=user)
    log.info("oidc device sign-in: user=%s provider=%s new_user=%s", user.username,
             result.identity.provider, result.created)
    return DevicePolled(status="done",
                        token=s.TokenCreated(**s.TokenOut.of(token).model_dump(),
                                             token=secret))
