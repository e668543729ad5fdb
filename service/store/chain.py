"""Hash-chain rules shared by the database verifier and offline checks of an exported transcript."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, get_args

from soctriage.service.domain import GENESIS_HASH, LedgerEntry, LedgerKind, canonical_json, format_ts
from soctriage.service.ledger_payload import LedgerPayload

LEDGER_KINDS: frozenset[str] = frozenset(get_args(LedgerKind))
# `format_ts` text ("2026-01-02T03:04:05.123456Z"), as SQLite stores ledger times.
_CANONICAL_TS_LENGTH = 27


class LedgerInputError(ValueError):
    """An entry the ledger refuses to write: unknown kind, empty actor, or a payload that is not JSON."""


def clean_entry_input(actor: str, kind: str, payload: LedgerPayload | Any) -> tuple[dict[str, Any], str]:
    """The payload equal to what will read back from the store (tuples become lists), and its canonical
    JSON text, which is both what its hash covers and what the store writes.

    The product writes its kind's model (service/ledger_events.py); a plain dict is the chain's raw form,
    written as it is (tests of the chain itself, and of readers meeting a payload no model describes).
    Raises `LedgerInputError` naming the offending part, so bad input never reaches the hash.
    """
    if not isinstance(actor, str) or not actor.strip():
        raise LedgerInputError(f"ledger actor must be a non-empty string, got {actor!r}")
    if kind not in LEDGER_KINDS:
        raise LedgerInputError(f"unknown ledger kind {kind!r}; expected one of {sorted(LEDGER_KINDS)}")
    if isinstance(payload, LedgerPayload):
        if payload.kind != kind:
            raise LedgerInputError(
                f"a {type(payload).__name__} payload is a {payload.kind} entry, not {kind}"
            )
        # A model's JSON-mode dump holds only JSON types (string keys, lists for tuples and sets), so it
        # reads back equal as it is; only a float can still be NaN or infinite, which canonical_json refuses.
        dumped = payload.as_payload()
        try:
            return dumped, canonical_json(dumped)
        except ValueError:
            _check_json(dumped, "payload")  # names the field
            raise
    if not isinstance(payload, dict):
        raise LedgerInputError(f"{kind} payload must be a JSON object (dict), got {type(payload).__name__}")
    _check_json(payload, "payload")
    text = canonical_json(payload)
    return json.loads(text), text


def _check_json(value: Any, path: str) -> None:
    # The stored payload must read back equal to what was hashed, so only types JSON keeps unchanged pass.
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LedgerInputError(f"{path}: {value!r} is not valid JSON (NaN and infinity are not allowed)")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise LedgerInputError(f"{path}: key {key!r} is {type(key).__name__}; JSON keys are strings")
            _check_json(item, f"{path}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    hint = " (use model_dump(mode='json'))" if hasattr(value, "model_dump") else ""
    raise LedgerInputError(f"{path}: {type(value).__name__} is not a JSON type{hint}")


class ChainLink(Protocol):
    """What the checker reads from an entry: a `LedgerEntry`, or a database row with the same columns.

    Rows may carry `ts` and `payload` as the stored text: verifying rows directly skips building a million
    pydantic models, and stored text that no longer parses is reported as tampering instead of crashing.
    """

    @property
    def case_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def ts(self) -> datetime | str: ...
    @property
    def actor(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any] | str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class LedgerProblem:
    """The first thing wrong with a case's chain. `seq` is None when no entry can be blamed."""

    seq: int | None
    reason: str

    def __str__(self) -> str:
        return self.reason


class ChainChecker:
    """Checks one case's entries as they stream by, in seq order, keeping only the last link in memory."""

    def __init__(self, case_id: str | None = None) -> None:
        self.case_id = case_id
        self.count = 0
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self.problem: LedgerProblem | None = None

    def feed(self, entry: ChainLink) -> LedgerProblem | None:
        if self.problem is None:
            self.count += 1
            self.problem = self._check(entry)
        return self.problem

    def _check(self, entry: ChainLink) -> LedgerProblem | None:
        # Each field is read once: on the verify path `entry` is a database row, and this runs per entry.
        case_id, seq, prev_hash, stored_hash = entry.case_id, entry.seq, entry.prev_hash, entry.hash
        if self.case_id is None:
            self.case_id = case_id
        elif case_id != self.case_id:
            return LedgerProblem(seq, f"entry {seq} belongs to case {case_id}, not {self.case_id}")
        expected = self.last_seq + 1
        if seq < expected:
            return LedgerProblem(
                seq, f"seq {seq} appears again after seq {self.last_seq} (duplicated or out of order)"
            )
        if seq > expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}-{seq - 1}"
            return LedgerProblem(expected, f"{missing} missing (deleted)")
        if prev_hash != self.last_hash:
            if seq == 1:
                return LedgerProblem(1, "entry 1 prev_hash is not the genesis hash (forged chain start)")
            return LedgerProblem(
                seq, f"entry {seq} prev_hash does not link to entry {self.last_seq} (reordered or inserted)"
            )
        ts, payload, actor, kind = entry.ts, entry.payload, entry.actor, entry.kind
        if isinstance(payload, str):
            # Fast path: the store keeps the payload as the canonical text it was hashed over, so the
            # stored text hashes as it is. Only a mismatch pays for parsing, which then tells an edit
            # apart from text a database merely re-spelled.
            if isinstance(ts, str):
                ts_text = ts if len(ts) == _CANONICAL_TS_LENGTH and ts.endswith("Z") else None
            else:
                ts_text = format_ts(ts)
            if ts_text is not None and stored_hash == LedgerEntry.hash_of_text(
                case_id, seq, ts_text, actor, kind, payload, prev_hash
            ):
                self.last_seq, self.last_hash = seq, stored_hash
                return None
        try:
            recomputed = LedgerEntry.compute_hash(
                case_id,
                seq,
                datetime.fromisoformat(ts) if isinstance(ts, str) else ts,
                actor,
                kind,
                json.loads(payload) if isinstance(payload, str) else payload,
                prev_hash,
            )
        except (TypeError, ValueError):
            return LedgerProblem(seq, f"entry {seq} hash mismatch: stored content no longer parses (edited)")
        if recomputed != stored_hash:
            return LedgerProblem(seq, f"entry {seq} hash mismatch: content was edited")
        self.last_seq, self.last_hash = seq, stored_hash
        return None

    def finish(self, head_seq: int | None = None, head_hash: str | None = None) -> LedgerProblem | None:
        """The final verdict; with the case's stored head it also catches a deleted or forged tail."""
        if self.problem is not None:
            return self.problem
        if head_seq is not None and self.last_seq < head_seq:
            self.problem = LedgerProblem(
                self.last_seq + 1,
                f"ledger ends at seq {self.last_seq} but the case head says {head_seq} (entries deleted)",
            )
        elif head_seq is not None and self.last_seq > head_seq:
            self.problem = LedgerProblem(
                head_seq + 1,
                f"ledger continues to seq {self.last_seq} past the case head at seq {head_seq} "
                "(entries added outside the store)",
            )
        elif head_hash is not None and self.last_hash != head_hash:
            self.problem = LedgerProblem(
                self.last_seq,
                f"entry {self.last_seq} hash differs from the case head hash (the chain was rewritten)",
            )
        return self.problem


def verify_entries(
    entries: Iterable[ChainLink], *, head_seq: int | None = None, head_hash: str | None = None
) -> LedgerProblem | None:
    """The first problem in one case's chain (entries in seq order), or None when it is intact.

    Pass the head an auditor recorded (`head_hash`, and `head_seq` if known) to also detect a truncated or
    extended chain; without it a chain with its tail cut off still verifies.
    """
    checker = ChainChecker()
    for entry in entries:
        if checker.feed(entry) is not None:
            break
    return checker.finish(head_seq, head_hash)


@dataclass(frozen=True)
class CaseVerification:
    case_id: str
    problem: LedgerProblem | None
    entries: int
    head_seq: int | None
    head_hash: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def bad_seq(self) -> int | None:
        return None if self.problem is None else self.problem.seq


@dataclass(frozen=True)
class VerifyReport:
    cases: tuple[CaseVerification, ...]

    @property
    def ok(self) -> bool:
        return all(case.ok for case in self.cases)

    @property
    def failures(self) -> tuple[CaseVerification, ...]:
        return tuple(case for case in self.cases if not case.ok)

    @property
    def entries_checked(self) -> int:
        return sum(case.entries for case in self.cases)
