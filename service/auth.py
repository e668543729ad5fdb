"""API keys: each has a name, one tenant and one role. Only the sha256 of a key is kept (in the store, or in
SOCTRIAGE_API_KEYS as NAME:TENANT:ROLE:SHA256); a presented key is hashed and compared in constant time.

A key looks like `stk_<id>_<secret>`: the id finds the stored row, the 32 random bytes of the secret are what
makes it unguessable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from soctriage.service.config import Settings
from soctriage.service.domain import utc_now
from soctriage.service.ingest.limits import MAX_PERSON_CHARS, MAX_TENANT_CHARS
from soctriage.service.store import Store
from soctriage.service.store.engine import write_transaction
from soctriage.service.store.schema import api_keys
from sqlalchemy import select, update

Role = Literal["viewer", "analyst", "approver", "admin", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)
# Each tenant role can do what the roles before it can. `operator` stands apart, above the tenants: it reads
# the service's own metrics, which count every tenant, and no tenant's cases; no tenant role includes it.
_RANK = {role: rank for rank, role in enumerate(("viewer", "analyst", "approver", "admin"))}
KEY_PREFIX = "stk_"


class KeyConfigError(ValueError):
    """A malformed SOCTRIAGE_API_KEYS entry or `keys create` argument."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (recorded in ledgers as human:<name>), its tenant and its role."""

    key_id: str
    name: str
    tenant: str
    role: Role

    def can(self, needed: Role) -> bool:
        if "operator" in (needed, self.role):
            return self.role == needed
        return _RANK[self.role] >= _RANK[needed]


@dataclass(frozen=True)
class StoredKey:
    principal: Principal
    created_at: datetime
    revoked_at: datetime | None


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise KeyConfigError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def check_tenant(tenant: str) -> str:
    if not tenant.strip():
        raise KeyConfigError("tenant: must not be empty")
    if len(tenant) > MAX_TENANT_CHARS:
        raise KeyConfigError(f"tenant: {len(tenant)} characters, limit is {MAX_TENANT_CHARS}")
    return tenant


def check_name(name: str) -> str:
    if len(name) > MAX_PERSON_CHARS:
        raise KeyConfigError(f"name: {len(name)} characters, limit is {MAX_PERSON_CHARS}")
    return name


def create_key(store: Store, tenant: str, role: str, name: str | None = None) -> tuple[Principal, str]:
    """Store a new key and return it with its token, which is shown once and never stored."""
    role = check_role(role)
    tenant = check_tenant(tenant)
    if name is not None:
        check_name(name)
    key_id = secrets.token_hex(6)
    token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    principal = Principal(key_id=key_id, name=name or f"key-{key_id}", tenant=tenant, role=role)
    with write_transaction(store.engine) as conn:
        conn.execute(
            api_keys.insert().values(
                id=key_id,
                name=principal.name,
                tenant=tenant,
                role=role,
                key_sha256=hash_key(token),
                created_at=utc_now(),
                revoked_at=None,
            )
        )
    return principal, token


def list_keys(store: Store, tenant: str | None = None) -> list[StoredKey]:
    query = select(api_keys).order_by(api_keys.c.created_at)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [StoredKey(Principal(r.id, r.name, r.tenant, r.role), r.created_at, r.revoked_at) for r in rows]


def revoke_key(store: Store, key_id: str) -> bool:
    with write_transaction(store.engine) as conn:
        done = conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=utc_now())
        )
        return done.rowcount == 1


def configured_keys(settings: Settings) -> list[tuple[Principal, str]]:
    """The keys of SOCTRIAGE_API_KEYS as (principal, sha256); a malformed entry is named in the error."""
    found = []
    for number, entry in enumerate(settings.api_keys, start=1):
        parts = entry.split(":")
        if len(parts) != 4 or not all(parts):
            raise KeyConfigError(f"SOCTRIAGE_API_KEYS entry {number}: expected NAME:TENANT:ROLE:SHA256")
        name, tenant, role, digest = parts
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise KeyConfigError(f"SOCTRIAGE_API_KEYS entry {number} ({name}): SHA256 must be 64 hex digits")
        try:
            principal = Principal(
                key_id=f"config:{name}",
                name=check_name(name),
                tenant=check_tenant(tenant),
                role=check_role(role),
            )
        except KeyConfigError as exc:
            raise KeyConfigError(f"SOCTRIAGE_API_KEYS entry {number} ({name}): {exc}") from exc
        found.append((principal, digest.lower()))
    return found


class Authenticator:
    """Resolves a presented key to its principal, or None."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.configured = configured_keys(settings)

    def authenticate(self, token: str) -> Principal | None:
        digest = hash_key(token)
        # Every configured key is compared, so timing does not tell which (or whether one) matched.
        match = None
        for principal, expected in self.configured:
            if hmac.compare_digest(digest, expected):
                match = principal
        if match is not None:
            return match
        key_id = token.removeprefix(KEY_PREFIX).split("_", 1)[0] if token.startswith(KEY_PREFIX) else ""
        if not key_id:
            return None
        with self.store.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(digest, row.key_sha256):
            return None
        return Principal(row.id, row.name, row.tenant, row.role)

    def by_key_id(self, key_id: str) -> Principal | None:
        """The principal of a key that signed in earlier (a console session), or None once it is revoked or
        no longer configured."""
        for principal, _ in self.configured:
            if principal.key_id == key_id:
                return principal
        with self.store.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        return Principal(row.id, row.name, row.tenant, row.role)
