"""The Ed25519 key that signs ledger checkpoints. It lives in a file, never in the database: someone who can
rewrite the database must not also be able to re-sign what they rewrote.

The key file is PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes), created with mode 0600 on first
use. The log it signs is named after the key: `soctriage/<first 16 hex digits of its fingerprint>`, and each
checkpoint's origin (and signing key name) adds the tenant scope, so one key serves every scope and a new key
starts new logs instead of silently continuing old ones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from soctriage.service.config import Settings
from soctriage.service.store.proof import SIGNATURE_LINE_PREFIX, VerifierKey

KEY_FILE_NAME = "ledger-signing.key"
ALL_TENANTS = "all-tenants"


class SigningKeyError(Exception):
    """The signing key is missing, unreadable, or readable by others."""


def signing_key_path(settings: Settings) -> Path:
    return settings.signing_key_path or settings.home / KEY_FILE_NAME


def scope_label(tenant: str | None) -> str:
    """How a scope is named in origins and messages: every tenant, or one."""
    return ALL_TENANTS if tenant is None else f"tenant/{quote(tenant, safe='')}"


@dataclass(frozen=True)
class PublicKey:
    """The public half: names the log, and gives the verifier key of each of its origins."""

    raw: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def log_name(self) -> str:
        return f"soctriage/{self.fingerprint[:16]}"

    def origin(self, tenant: str | None) -> str:
        # quote() leaves no space or '+' in a tenant name: origins double as note key names.
        return f"{self.log_name}/{scope_label(tenant)}"

    def verifier(self, origin: str) -> VerifierKey:
        return VerifierKey.for_key(origin, self.raw)


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey, path: Path) -> None:
        self._private = private
        self.path = path
        self.public = PublicKey(private.public_key().public_bytes_raw())

    def sign_note(self, text: str, name: str) -> str:
        """`text` as a C2SP signed note, signed under key name `name` (the checkpoint's origin)."""
        verifier = self.public.verifier(name)
        signature = verifier.key_id.to_bytes(4, "big") + self._private.sign(text.encode())
        return f"{text}\n{SIGNATURE_LINE_PREFIX}{name} {base64.b64encode(signature).decode()}\n"


def load_signing_key(settings: Settings, *, create: bool) -> tuple[SigningKey, bool]:
    """The configured key, and whether it was created just now (only when `create`)."""
    path = signing_key_path(settings)
    if not path.exists():
        if not create:
            raise SigningKeyError(
                f"no signing key at {path}: run `soctriage ledger checkpoint` (or `ledger pubkey`) once to create"
                " it, or set SOCTRIAGE_SIGNING_KEY_PATH"
            )
        return _create(path), True
    return _load(path), False


def local_public_key(settings: Settings) -> PublicKey | None:
    """The public half of the configured key, or None when there is no usable key here (never creates one)."""
    try:
        return load_signing_key(settings, create=False)[0].public
    except SigningKeyError:
        return None


def _load(path: Path) -> SigningKey:
    mode = path.stat().st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"signing key {path} is readable by others (mode {stat.S_IMODE(mode):04o}): run chmod 600 {path}"
        )
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"signing key {path}: cannot read it as an unencrypted PEM key ({exc})"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"signing key {path} is not an Ed25519 key")
    return SigningKey(private, path)


def _create(path: Path) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes creating the key at once must not end up signing with different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return SigningKey(private, path)
