"""How every console page is served: the packaged static assets (cached for good by version), the Jinja2
templates, the security headers and session cookie, and the sign-in redirect and error pages."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import escape
from soctriage.service.console import views
from soctriage.service.console.access import BadRequest, SignInRequired, Visitor, signer
from soctriage.service.console.session import COOKIE
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"


def _asset_version() -> str:
    """A digest of every static file: part of each asset URL, so browsers may cache assets for good."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


ASSET_VERSION = _asset_version()


class StaticAssets(StaticFiles):
    """The package's static files; a URL with the asset version (`?v=`) never changes, so it is cached for a
    year, and a plain URL (Swagger UI's) is revalidated."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" + ASSET_VERSION.encode() in scope.get("query_string", b"")
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def static_url(name: str) -> str:
    return f"/static/{name}?v={ASSET_VERSION}"


templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters.update(
    when=views.when, cited=views.cited, summary=views.entry_summary, payload=views.payload_json
)
templates.env.globals.update(
    STATUSES=views.STATUSES, DISPOSITIONS=views.DISPOSITIONS, SEVERITIES=views.SEVERITIES, static=static_url
)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
# The evidence report is its own self-contained document (inline styles, no scripts), framed by the console.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def secure(request: Request, response: Response, visitor: Visitor | None, csp: str = CSP) -> Response:
    """Security headers on every console response, and the session cookie when it is new."""
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    if visitor is not None and visitor.issue_cookie:
        response.set_cookie(
            COOKIE,
            signer(request).dump(visitor.session),
            max_age=signer(request).ttl_s,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response


def render(
    request: Request,
    visitor: Visitor,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    values = {"visitor": visitor, "user": visitor.principal, "csrf": visitor.csrf, **(context or {})}
    response = templates.TemplateResponse(request, template, values, status_code=status, headers=headers)
    return secure(request, response, visitor)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def sign_in_redirect(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    if is_htmx(request):
        response = HTMLResponse(
            f'<div class="flash error" role="alert">{escape(str(exc))}</div>',
            status_code=exc.status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
        )
    else:
        context = {"visitor": None, "user": None, "csrf": "", "status": exc.status, "message": str(exc)}
        response = templates.TemplateResponse(request, "error.html", context, status_code=exc.status)
    return secure(request, response, None)


ERROR_HANDLERS = {SignInRequired: sign_in_redirect, BadRequest: bad_request}
