"""Who is calling: the API key (Authorization: Bearer KEY, or X-API-Key: KEY) resolved to a Principal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from soctriage.service.auth import Authenticator, Principal, Role

_bearer = HTTPBearer(auto_error=False, description="an API key from `soctriage keys create`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the same API key, as a header")


def anonymous(tenant: str) -> Principal:
    """Who a request is when auth is off (loopback only by default): an admin of the configured tenant."""
    return Principal(key_id="anonymous", name="anonymous", tenant=tenant, role="admin")


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def principal(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header: Annotated[str | None, Security(_header)],
    ) -> Principal:
        state = request.app.state
        if not state.auth_enabled:
            return anonymous(state.settings.tenant)
        token = bearer.credentials if bearer is not None else header
        if not token:
            raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
        authenticator: Authenticator = state.authenticator
        who = await asyncio.to_thread(authenticator.authenticate, token)
        if who is None:
            raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if not who.can(role):
            needed = "operator" if role == "operator" else f"{role} or above"
            raise HTTPException(403, f"role {who.role} may not do this ({needed} needed)")
        request.state.principal = who
        return who

    return principal


Viewer = Annotated[Principal, Depends(require("viewer"))]
Analyst = Annotated[Principal, Depends(require("analyst"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Operator = Annotated[Principal, Depends(require("operator"))]
