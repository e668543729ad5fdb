"""Who is using the console, as FastAPI dependencies: the session cookie resolved to a principal, and the CSRF
and origin checks every POST passes before it does anything."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request
from soctriage.service.api.security import anonymous
from soctriage.service.auth import Authenticator, Principal
from soctriage.service.console.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionSigner

MAX_FORM_BYTES = 64 * 1024


class SignInRequired(Exception):
    """No session with a valid key: the browser goes to the sign-in page."""


class BadRequest(Exception):
    """A console request that cannot be honoured (bad CSRF token, wrong origin, oversized form)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Visitor:
    """A browser with a console session; `principal` is None until it signs in (auth on)."""

    session: Session
    principal: Principal | None
    csrf: str
    issue_cookie: bool  # the session is new (or renewed): the response sets the cookie


@dataclass(frozen=True)
class User:
    principal: Principal
    visitor: Visitor

    @property
    def csrf(self) -> str:
        return self.visitor.csrf


def signer(request: Request) -> SessionSigner:
    return request.app.state.session_signer


async def visitor(request: Request) -> Visitor:
    sessions = signer(request)
    state = request.app.state
    session = sessions.load(request.cookies.get(COOKIE))
    issue = session is None
    if session is None:
        session = sessions.new(None)
    principal: Principal | None
    if not state.auth_enabled:
        principal = anonymous(state.settings.tenant)
    elif session.key_id is None:
        principal = None
    else:
        authenticator: Authenticator = state.authenticator
        principal = await asyncio.to_thread(authenticator.by_key_id, session.key_id)
        if principal is None:  # revoked since it signed in
            session, issue = sessions.new(None), True
    if principal is not None:
        request.state.principal = principal  # for the access log
    return Visitor(session, principal, sessions.csrf_token(session), issue)


async def user(found: Annotated[Visitor, Depends(visitor)]) -> User:
    if found.principal is None:
        raise SignInRequired
    return User(found.principal, found)


async def form(request: Request) -> dict[str, str]:
    """The urlencoded body of a console POST (the console's forms never upload files)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise BadRequest(413, f"form over {MAX_FORM_BYTES} bytes")
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


async def checked_form(request: Request, found: Annotated[Visitor, Depends(visitor)]) -> dict[str, str]:
    """The form of a POST that came from a console page: same origin, and carrying this session's CSRF token
    (in the X-CSRF-Token header htmx and the chat send, or the `csrf` field of a plain form)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        here = urlsplit(str(request.base_url))
        theirs = urlsplit(origin)
        if (theirs.scheme, theirs.netloc) != (here.scheme, here.netloc):
            raise BadRequest(403, f"origin {origin} is not this console")
    fields = await form(request)
    token = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
    if not signer(request).csrf_ok(found.session, token):
        raise BadRequest(403, "the form's CSRF token is missing or stale: reload the page and try again")
    return fields


VisitorDep = Annotated[Visitor, Depends(visitor)]
UserDep = Annotated[User, Depends(user)]
FormDep = Annotated[dict[str, str], Depends(checked_form)]
