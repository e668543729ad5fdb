"""Checking soctriage evidence without soctriage: a case ledger export, its hash chain, the Merkle inclusion proof
of its head, and the signed checkpoint that commits to that head.

This module uses only the Python standard library, so an auditor can copy this one file and run

    python3 proof.py CASE.jsonl --pubkey soctriage.pub

The hash chain and the inclusion proof need nothing else. Ed25519 is not in the standard library: the signature
is checked with the `cryptography` package when it can be imported, else with the `openssl` command (3.0 or
later). soctriage reads and verifies checkpoints with these same functions.

Formats, all public:
- A checkpoint is the text of a C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): origin, tree size, base64 RFC
  6962 root hash, then extension lines (`time …`, `cases …`, `previous <sha256 hex of the previous checkpoint>`),
  signed as a C2SP signed note (c2sp.org/signed-note) with Ed25519 (signature type 0x01).
- A verifier key is `<name>+<key id, 8 hex digits>+<base64(0x01 || 32-byte Ed25519 public key)>`, the key id
  being the first four bytes of SHA-256(name || 0x0A || 0x01 || public key).
- Each Merkle leaf is one case head: the UTF-8 JSON array `[case_id, head_seq, head_hash]` (no spaces),
  hashed as an RFC 6962 leaf.
- A ledger entry's hash is SHA-256(prev_hash || canonical JSON of the entry without `hash`): keys sorted, no
  spaces, non-ASCII characters written as UTF-8.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

ED25519_SIGNATURE_TYPE = 0x01
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32 key bytes follow it.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
SIGNATURE_LINE_PREFIX = "\u2014 "
# The signed-note spec asks verifiers to bound a note; ours carry one signature and a few short lines.
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 64
GENESIS_HASH = "0" * 64


class ProofError(ValueError):
    """Evidence that does not check out; the message says what and where."""


# ---- RFC 6962 Merkle tree hashing ------------------------------------------------------------------------


def head_leaf(case_id: str, head_seq: int, head_hash: str) -> bytes:
    """The leaf data committing to one case's chain head: json.dumps([case_id, head_seq, head_hash],
    separators=(",", ":"), ensure_ascii=False), spelled out because it runs once per case per checkpoint."""
    return f"[{encode_basestring(case_id)},{int(head_seq)},{encode_basestring(head_hash)}]".encode()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when `proof` shows that the leaf hash `leaf` is leaf number `index` of the tree of `size` leaves
    whose root is `root` (the verification algorithm of RFC 9162, section 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


# ---- C2SP signed notes and checkpoints --------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def check_key_name(name: str) -> str:
    if not name or any(ch.isspace() or ch == "+" for ch in name):
        raise ProofError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


@dataclass(frozen=True)
class VerifierKey:
    """A trusted Ed25519 note key: its name (the checkpoint origin), key id and public key."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def for_key(cls, name: str, public_key: bytes) -> VerifierKey:
        return cls(check_key_name(name), key_id(name, public_key), public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read `<name>+<hex key id>+<base64 key data>`, checking the key id against the key."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise ProofError("a verifier key reads <name>+<key id>+<base64 key>")
        name, hex_id, data = parts
        try:
            raw = base64.b64decode(data, validate=True)
            stated = int(hex_id, 16)
        except (binascii.Error, ValueError) as exc:
            raise ProofError(f"verifier key {name}: key id or key data is not valid ({exc})") from exc
        if len(hex_id) != 8 or len(raw) != 33 or raw[0] != ED25519_SIGNATURE_TYPE:
            raise ProofError(f"verifier key {name}: not an Ed25519 note key (type 0x01, 32-byte key)")
        key = cls.for_key(name, raw[1:])
        if key.key_id != stated:
            raise ProofError(f"verifier key {name}: key id {hex_id} does not match the key")
        return key

    def encode(self) -> str:
        data = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{data}"

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, hex: one name for the key whatever origin it signs under."""
        return hashlib.sha256(self.public_key).hexdigest()


def read_verifier_keys(text: str) -> list[VerifierKey]:
    """Every verifier key in a file, one per line (blank lines and `#` comments skipped)."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                keys.append(VerifierKey.parse(line))
            except ProofError as exc:
                raise ProofError(f"line {number}: {exc}") from exc
    if not keys:
        raise ProofError("no verifier key found")
    return keys


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    signature: bytes
    line: str


def split_note(note: str) -> tuple[str, list[Signature]]:
    """A signed note's text (ending in its newline) and its signature lines, per c2sp.org/signed-note."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise ProofError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise ProofError("note contains a control character")
    if not note.endswith("\n"):
        raise ProofError("note does not end in a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise ProofError("note has no blank line before its signatures")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    if not lines or len(lines) > MAX_SIGNATURES:
        raise ProofError(f"note must carry 1 to {MAX_SIGNATURES} signature lines")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_LINE_PREFIX):
            raise ProofError(f"malformed signature line {line!r}")
        name, _, data = line[len(SIGNATURE_LINE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise ProofError(f"signature of {name!r} is not base64") from exc
        if not name or len(raw) < 5:
            raise ProofError(f"malformed signature line {line!r}")
        signatures.append(Signature(name, int.from_bytes(raw[:4], "big"), raw[4:], line))
    return text, signatures


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint whose signature verified: the tree head it commits to, and who signed it."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    note: str
    signer: VerifierKey
    signature: Signature

    def extension(self, key: str) -> str | None:
        """The value of the extension line `<key> <value>`, if present."""
        for line in self.extensions:
            name, _, value = line.partition(" ")
            if name == key:
                return value
        return None

    @property
    def time(self) -> str | None:
        return self.extension("time")

    @property
    def previous(self) -> str | None:
        return self.extension("previous")

    @property
    def note_sha256(self) -> str:
        return note_sha256(self.note)


def note_sha256(note: str) -> str:
    """How a checkpoint is named by the next one (`previous`): SHA-256 of the whole signed note, hex."""
    return hashlib.sha256(note.encode()).hexdigest()


def parse_checkpoint_text(text: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    """Origin, tree size, root hash and extension lines of a checkpoint's note text."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise ProofError("checkpoint text must be at least three lines, each ending in a newline")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin:
        raise ProofError("checkpoint origin line is empty")
    if not size_text.isascii() or not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise ProofError(f"checkpoint tree size {size_text!r} is not a decimal number without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise ProofError("checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise ProofError("checkpoint root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise ProofError("checkpoint extension lines must not be empty")
    return origin, int(size_text), root, tuple(extensions)


def open_note(
    note: str, trusted: Sequence[VerifierKey], *, backend: str = "auto"
) -> tuple[str, VerifierKey, Signature]:
    """The text of a signed note, and the trusted key whose signature on it verified.

    Follows c2sp.org/signed-note: signatures by unknown keys (name and key id not both matching) are ignored;
    a signature by a known key that fails rejects the note; at least one must verify. Raises ProofError.
    """
    text, signatures = split_note(note)
    known = {(key.name, key.key_id): key for key in trusted}
    verified: tuple[VerifierKey, Signature] | None = None
    for signature in signatures:
        key = known.get((signature.name, signature.key_id))
        if key is None:
            continue
        if not ed25519_verify(key.public_key, signature.signature, text.encode(), backend=backend):
            raise ProofError(
                f"signature by {key.name} (key id {key.key_id:08x}) does not verify: the checkpoint was "
                "altered or forged"
            )
        verified = verified or (key, signature)
    if verified is None:
        names = ", ".join(f"{s.name} (key id {s.key_id:08x})" for s in signatures)
        raise ProofError(f"not signed by a trusted key: signed by {names}")
    return (text, *verified)


def open_checkpoint(note: str, trusted: Sequence[VerifierKey], *, backend: str = "auto") -> Checkpoint:
    """A signed checkpoint, once its signature verified with a trusted key (see `open_note`)."""
    text, key, signature = open_note(note, trusted, backend=backend)
    origin, size, root, extensions = parse_checkpoint_text(text)
    return Checkpoint(origin, size, root, extensions, note, key, signature)


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes, *, backend: str = "auto") -> bool:
    """Ed25519 (RFC 8032) verification with `cryptography`, or with the `openssl` command."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    if backend in ("auto", "cryptography"):
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            if backend == "cryptography":
                raise
        else:
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
            except InvalidSignature:
                return False
            return True
    return _openssl_verify(public_key, signature, message)


def _openssl_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    pem = (
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(_ED25519_SPKI_PREFIX + public_key).decode()
        + "\n-----END PUBLIC KEY-----\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: os.path.join(folder, name) for name in ("key.pem", "message", "signature")}
        for name, data in (("key.pem", pem.encode()), ("message", message), ("signature", signature)):
            with open(paths[name], "wb") as fh:
                fh.write(data)
        try:
            done = subprocess.run(
                [
                    *("openssl", "pkeyutl", "-verify", "-pubin", "-rawin", "-inkey", paths["key.pem"]),
                    *("-in", paths["message"], "-sigfile", paths["signature"]),
                ],
                capture_output=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ProofError(
                "cannot check the Ed25519 signature: install the `cryptography` package or OpenSSL 3"
            ) from exc
    return done.returncode == 0


# ---- a case export --------------------------------------------------------------------------------------


def entry_hash(entry: dict[str, Any]) -> str:
    """The hash an entry must carry: SHA-256 of prev_hash and the canonical JSON of the entry without it."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256((str(entry["prev_hash"]) + text).encode()).hexdigest()


@dataclass(frozen=True)
class Commitment:
    """What a checkpoint commits to for one exported case: the head at `head_seq`."""

    checkpoint: Checkpoint
    head_seq: int
    head_hash: str
    leaf_index: int


def check_commitment(
    record: Any,
    case_id: str,
    hashes: dict[int, str],
    trusted: Sequence[VerifierKey],
    *,
    backend: str = "auto",
) -> Commitment:
    """Check an export's `checkpoint` record: the signed checkpoint, the committed head being an entry of this
    chain (`hashes`: seq -> hash of the verified chain), and the inclusion proof of that head's leaf."""
    if not isinstance(record, dict):
        raise ProofError("checkpoint record is not a JSON object")
    try:
        note, index = str(record["note"]), int(record["leaf_index"])
        seq, head = int(record["head_seq"]), str(record["head_hash"])
        proof = [base64.b64decode(item, validate=True) for item in record["inclusion_proof"]]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProofError(f"checkpoint record: missing or malformed field ({exc})") from exc
    checkpoint = open_checkpoint(note, trusted, backend=backend)
    if hashes.get(seq) != head:
        raise ProofError(
            f"the checkpoint commits case {case_id} at seq {seq} with hash {head}, which is not an entry of "
            "this chain"
        )
    leaf = leaf_hash(head_leaf(case_id, seq, head))
    if not verify_inclusion(leaf, index, checkpoint.size, proof, checkpoint.root):
        raise ProofError(
            f"the inclusion proof of case {case_id} at seq {seq} does not lead to the checkpoint's root"
        )
    return Commitment(checkpoint, seq, head, index)


def check_export(lines: Iterable[str], trusted: Sequence[VerifierKey], *, backend: str = "auto") -> str:
    """Verify an exported transcript whole; returns a one-paragraph summary, raises ProofError naming the
    first problem. Independent of soctriage's own verifier: this is the auditor's second opinion."""
    entries: list[dict[str, Any]] = []
    record = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProofError(f"line {number}: not JSON: {exc.msg}") from exc
        if not isinstance(item, dict):
            raise ProofError(f"line {number}: not a JSON object")
        if "checkpoint" in item:
            record = item["checkpoint"]
        else:
            entries.append(item)
    if not entries:
        raise ProofError("the export has no ledger entries")
    case_id, previous = entries[0].get("case_id"), GENESIS_HASH
    hashes: dict[int, str] = {}
    for expected_seq, entry in enumerate(entries, start=1):
        seq = entry.get("seq")
        if entry.get("case_id") != case_id or seq != expected_seq:
            raise ProofError(
                f"entry {expected_seq}: expected seq {expected_seq} of case {case_id}, got {seq}"
            )
        if entry.get("prev_hash") != previous:
            raise ProofError(f"entry {seq}: prev_hash does not link to entry {seq - 1}")
        if entry_hash(entry) != entry.get("hash"):
            raise ProofError(f"entry {seq}: hash mismatch, the content was edited")
        previous = hashes[seq] = str(entry["hash"])
    if record is None:
        raise ProofError(
            f"case {case_id}: chain of {len(entries)} entries intact, but no checkpoint to check"
        )
    return describe(
        str(case_id), len(entries), check_commitment(record, str(case_id), hashes, trusted, backend=backend)
    )


def describe(case_id: str, entries: int, done: Commitment) -> str:
    """What a verified export proves, in one paragraph."""
    checkpoint = done.checkpoint
    return (
        f"case {case_id}: {entries} entries, chain intact; seq 1-{done.head_seq} committed by the checkpoint of "
        f"{checkpoint.origin} at tree size {checkpoint.size} ({checkpoint.time or 'no time'}), signature by key "
        f"{checkpoint.signer.fingerprint[:16]} verified"
        + (
            f"; seq {done.head_seq + 1}-{entries} not yet covered by a checkpoint"
            if entries > done.head_seq
            else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a soctriage ledger export (JSONL) offline.")
    parser.add_argument("export", help="the file written by `soctriage ledger export CASE --format jsonl`")
    parser.add_argument("--pubkey", required=True, help="file with the soctriage verifier key(s)")
    args = parser.parse_args(argv)
    try:
        with open(args.pubkey, encoding="utf-8") as fh:
            trusted = read_verifier_keys(fh.read())
        with open(args.export, encoding="utf-8") as fh:
            print(check_export(fh, trusted))
    except OSError as exc:
        print(f"{exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except ProofError as exc:
        print(f"{args.export}: FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
