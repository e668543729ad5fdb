"""What retrieval indexes and finds: a finished case as a document (its alert as text, its entities, the
verdict or the analyst's disposition), the knowledge base's documents, and what a search returns. The index
itself is tools/retrieval.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from soctriage.service.alert_entities import OBSERVABLES, alert_text, pick
from soctriage.service.domain import Alert, Case, Disposition, Frozen

KnowledgeKind = Literal["attack", "lolbin", "runbook"]
DispositionSource = Literal["analyst", "model"]


class CaseDocument(Frozen):
    """What the index keeps about one finished case."""

    case_id: str
    tenant: str
    status: str
    disposition: Disposition | None
    disposition_source: DispositionSource = "model"
    reason_code: str | None = None
    title: str
    summary: str
    techniques: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    text: str = Field(description="the text that is embedded")


class SimilarCase(Frozen):
    case_id: str
    status: str
    disposition: Disposition | None
    disposition_source: DispositionSource = Field(
        description="analyst: confirmed by a human through feedback; model: the triage verdict"
    )
    reason_code: str | None = None
    title: str
    summary: str
    techniques: tuple[str, ...] = ()
    similarity: float = Field(description="cosine similarity of the two alerts' texts, -1..1")
    near_duplicate: bool = Field(
        default=False, description="so similar that it is the same alert again (threshold per embedder)"
    )


class KnowledgeDoc(Frozen):
    id: str
    kind: KnowledgeKind
    title: str
    text: str
    source: str


class KnowledgeHit(Frozen):
    id: str
    kind: KnowledgeKind
    title: str
    text: str
    source: str
    similarity: float


def _entities(alert: Alert) -> tuple[str, ...]:
    found = pick(alert, (OBSERVABLES, "device.hostname", "user.name"))
    return tuple(dict.fromkeys(str(e.value) for e in found))[:50]


def case_document(case: Case, alert: Alert, feedback: dict[str, Any] | None = None) -> CaseDocument:
    """The index entry of a finished case; `feedback` (a `feedback` ledger payload) overrides the model's
    disposition with the analyst's."""
    verdict = case.verdict
    disposition = verdict.disposition if verdict else None
    source: DispositionSource = "model"
    reason_code = None
    if feedback and feedback.get("disposition"):
        disposition, source, reason_code = feedback["disposition"], "analyst", feedback.get("reason_code")
    summary = verdict.summary if verdict else f"{case.status}: {alert.title}"
    if feedback and feedback.get("note"):
        summary += f" (analyst: {feedback['note']})"
    return CaseDocument(
        case_id=case.id,
        tenant=case.tenant,
        status=case.status,
        disposition=disposition,
        disposition_source=source,
        reason_code=reason_code,
        title=alert.title,
        summary=summary[:1000],
        techniques=tuple(verdict.techniques) if verdict else alert.techniques,
        entities=_entities(alert),
        text=alert_text(alert),
    )
