"""The ledger's payload schema against entries today's code wrote.

tests/fixtures/golden_ledger.jsonl holds whole cases as the store read them back after the public surface
(Triager, the CLI) triaged bundled samples with the builtin and a scripted model, grouped a repeat alert,
approved, rejected and let an approval expire, chatted, gave feedback and taught then revoked a rule. Their
hashes were computed by that code, so a model that re-serialises a payload differently breaks the chain here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import get_args

from soctriage.service.domain import LedgerEntry, LedgerKind, canonical_json
from soctriage.service.store import verify_entries

GOLDEN = Path(__file__).parent / "fixtures" / "golden_ledger.jsonl"


def golden_entries() -> Iterator[LedgerEntry]:
    with GOLDEN.open(encoding="utf-8") as lines:
        for line in lines:
            yield LedgerEntry.model_validate(json.loads(line))


def test_the_golden_ledger_verifies_as_written() -> None:
    entries = list(golden_entries())
    cases = {case_id: list(chain) for case_id, chain in groupby(entries, key=lambda e: e.case_id)}
    assert len(cases) >= 7 and len(entries) == sum(len(chain) for chain in cases.values())
    for case_id, chain in cases.items():
        assert verify_entries(chain) is None, case_id
        assert all(entry.expected_hash() == entry.hash for entry in chain)


def test_every_golden_payload_parses_and_writes_back_byte_for_byte() -> None:
    seen: set[str] = set()
    for entry in golden_entries():
        event = entry.event()
        seen.add(entry.kind if entry.kind != "note" else f"note:{entry.payload['event']}")
        written = event.as_payload()
        assert canonical_json(written) == canonical_json(entry.payload), (entry.case_id, entry.seq)
        ts, payload, prev = entry.ts, written, entry.prev_hash
        assert LedgerEntry.compute_hash(
            entry.case_id, entry.seq, ts, entry.actor, entry.kind, payload, prev
        ) == (entry.hash)
    assert {"alert_received", "llm_call", "verdict", "feedback", "chat_message", "note:grouped_alert"} <= seen
    assert {"note:model_fallback", "note:possible_prompt_injection", "note:suppression_rule"} <= seen
    assert set(get_args(LedgerKind)) - {"note"} <= seen
