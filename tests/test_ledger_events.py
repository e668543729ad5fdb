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

import pytest
from soctriage.service.config import Settings
from soctriage.service.domain import LedgerEntry, LedgerKind, canonical_json
from soctriage.service.ledger_events import AlertReceived, LlmCall, TokenTotals, events_of, token_totals
from soctriage.service.ledger_notes import ModelFallback, VerdictRejected
from soctriage.service.store import LedgerInputError, Store, verify_entries
from test_graph import sample
from test_store import make_alert

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


def test_an_alert_is_written_as_today_s_code_wrote_it() -> None:
    received = [e for e in golden_entries() if e.kind == "alert_received" and e.seq == 1]
    lsass = next(e for e in received if e.payload["title"] == sample("crowdstrike-lsass-dump.json").title)
    assert AlertReceived.of(sample("crowdstrike-lsass-dump.json")).as_payload() == lsass.payload
    assert AlertReceived.model_validate(lsass.payload).alert().model_dump(exclude={"raw"}) == sample(
        "crowdstrike-lsass-dump.json"
    ).model_dump(exclude={"raw"})


def test_the_store_writes_models_and_reads_them_back(tmp_path: Path) -> None:
    with Store.open(Settings(home=tmp_path)) as store:
        case = store.create_case(make_alert(), "acme")
        fallback = ModelFallback(from_="openai:x", reason="down")
        written = store.append(case.id, "system", "note", fallback)
        assert written.payload == {"event": "model_fallback", "from": "openai:x", "reason": "down"}
        calls = [LlmCall(model="m", prompt_tokens=p, completion_tokens=1, total_tokens=p + 1) for p in (3, 4)]
        store.append_many(case.id, [("triage_agent", "llm_call", call) for call in calls])
        entries = store.entries(case.id)
        assert [e.event() for e in entries if e.kind == "note"] == [fallback]
        assert token_totals(events_of(entries, LlmCall)) == TokenTotals(2, 7, 2, 9)
        assert [e.from_ for e in events_of(entries, ModelFallback)] == ["openai:x"]
        assert events_of(entries, VerdictRejected) == []
        with pytest.raises(LedgerInputError, match="ModelFallback payload is a note entry, not verdict"):
            store.append(case.id, "system", "verdict", fallback)
        assert store.verify().ok


def test_a_model_payload_with_a_non_finite_number_is_refused_naming_the_field(tmp_path: Path) -> None:
    with Store.open(Settings(home=tmp_path)) as store:
        case = store.create_case(make_alert(), "acme")
        slow = LlmCall(model="m", latency_ms=float("inf"))
        with pytest.raises(LedgerInputError, match=r"payload\['latency_ms'\]: inf is not valid JSON"):
            store.append(case.id, "triage_agent", "llm_call", slow)
        assert store.head_seq(case.id) == 1
        written = store.append(case.id, "triage_agent", "llm_call", LlmCall(model="m", latency_ms=12.5))
        assert written.payload == store.entries(case.id)[-1].payload == {"model": "m", "latency_ms": 12.5}
