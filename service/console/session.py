"""Console sessions: an API key signs in once and the browser then holds a signed session cookie instead.

The cookie holds the key's id (never the key), a random nonce and an expiry, signed with HMAC-SHA256. Every
request resolves the key id again, so a revoked key's sessions end at once. The CSRF token of a session is an
HMAC of its nonce: a page renders it into its forms, every POST must send it back, and another site can
neither read it nor (SameSite=Strict) make the browser send the cookie. A visitor who has not signed in (and
every visitor when auth is off) holds a session without a key, so the sign-in form is protected the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "soctriage_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    key_id: str | None  # None: not signed in
    nonce: str
    expires: int  # unix seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, secret: bytes, ttl_s: float) -> None:
        self._secret = secret
        self.ttl_s = int(ttl_s)

    @classmethod
    def random(cls, ttl_s: float) -> SessionSigner:
        return cls(secrets.token_bytes(32), ttl_s)

    def _mac(self, purpose: str, data: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}\x1f{data}".encode(), hashlib.sha256).digest())

    def new(self, key_id: str | None, now: float | None = None) -> Session:
        return Session(key_id, secrets.token_urlsafe(16), int((now or time.time()) + self.ttl_s))

    def dump(self, session: Session) -> str:
        body = _b64(json.dumps([session.key_id, session.nonce, session.expires]).encode())
        return f"{body}.{self._mac('session', body)}"

    def load(self, value: str | None, now: float | None = None) -> Session | None:
        """The session in a cookie value, or None when it is missing, forged, malformed or expired."""
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            key_id, nonce, expires = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(expires, int) or expires <= (now or time.time()):
            return None
        return Session(key_id if isinstance(key_id, str) else None, str(nonce), expires)

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.nonce)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))
