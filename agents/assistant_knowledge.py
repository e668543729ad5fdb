"""The builtin case assistant's answers from retrieval: similar past cases, the runbooks that fit the case,
and what the knowledge base says of an ATT&CK technique, each cited to the lookup it made."""

from __future__ import annotations

import re

from soctriage.agents.assistant_facts import cite
from soctriage.agents.assistant_session import ChatSession
from soctriage.service.alert_entities import pick
from soctriage.service.domain import Alert
from soctriage.service.ledger_events import is_event
from soctriage.service.ledger_notes import PossiblePromptInjection
from soctriage.tools.retrieval_embed import related_floor
from soctriage.tools.retrieval_tools import KnowledgeSearchResult, Runbook, SimilarCasesResult, runbooks


async def similar_answer(session: ChatSession) -> str:
    seq, output = await session.lookup_output("similar_cases", {}, SimilarCasesResult)
    found = output.cases if output else ()
    floor = related_floor(session.deps.settings, "case")
    close = [c for c in found if c.similarity >= floor]
    if not close:
        # The nearest one is not named: a case below the floor is not related, and naming it invites a look.
        nearest = f"; the nearest scores {found[0].similarity:.2f}" if found else ""
        return (
            f"No earlier case of this tenant is similar enough to count (similarity below {floor:.2f}{nearest})"
            f"{cite(seq)}."
        )
    lines = [f"Most similar past cases{cite(seq)}:"]
    for c in close:
        who = "confirmed by an analyst" if c.disposition_source == "analyst" else "model verdict"
        lines.append(
            f"- {c.case_id} ({c.similarity:.2f}): {c.disposition} ({who}), status {c.status}: {c.summary}"
        )
    top = close[0]
    lines.append(f"Last time a case like this was decided {top.disposition} ({top.case_id}).")
    return "\n".join(lines)


def case_techniques(session: ChatSession) -> set[str]:
    found = set(session.alert.techniques)
    if session.case.verdict:
        found |= set(session.case.verdict.techniques)
    return found


def fitting_runbooks(session: ChatSession, question: str) -> list[tuple[Runbook, str, tuple[int, ...]]]:
    """The runbooks that fit, each with why and the seqs that show it: the one the question names, else those
    whose ATT&CK techniques the case shows (a named sub-technique first), plus the prompt-injection runbook
    when the alert carries text aimed at the model."""
    books = runbooks()
    q = question.lower()
    named = [b for b in books if _names_runbook(q, b)]
    if named:
        return [(b, "the question names it", ()) for b in named]
    techniques = case_techniques(session)
    parents = {t.split(".")[0] for t in techniques}
    exact = [(book, sorted(techniques & set(book.techniques))) for book in books]
    broad = [(book, sorted(parents & {t.split(".")[0] for t in book.techniques})) for book in books]
    # A sub-technique the runbook names beats a shared parent (T1059.003 cmd is not encoded PowerShell);
    # between runbooks sharing a technique (T1105), the one that names the alert's programs wins.
    matches = [m for m in exact if m[1]] or [m for m in broad if m[1]]
    programs = _programs(session.alert)
    scored = [(len(shown), _mentions(book, programs), book, shown) for book, shown in matches]
    best = max(((n, m) for n, m, *_ in scored), default=None)
    verdict = session.last("verdict")
    shows = (1, verdict.seq) if verdict else (1,)
    picked = [
        (book, f"the case shows {', '.join(shown)}", shows) for n, m, book, shown in scored if (n, m) == best
    ]
    notes = session.of_kind("note")
    injected = next((n for n in notes if is_event(n, PossiblePromptInjection)), None)
    if injected is not None:
        book = next(b for b in books if b.name == "prompt-injection-in-alerts")
        picked.append((book, "the alert carries text aimed at the model", (injected.seq,)))
    return picked


def _programs(alert: Alert) -> set[str]:
    """The alert's program names without extensions (certutil, vssadmin, procdump64, powershell)."""
    names = pick(alert, ("process.name", "process.parent.name", "file.name"))
    return {str(e.value).lower().rsplit("\\", 1)[-1].removesuffix(".exe") for e in names}


def _mentions(book: Runbook, programs: set[str]) -> int:
    text = " ".join([book.intro, *(body for _, body in book.sections)]).lower()
    return sum(1 for name in programs if len(name) >= 4 and re.search(rf"\b{re.escape(name)}\b", text))


def _names_runbook(q: str, book: Runbook) -> bool:
    topic = book.title.lower().removeprefix("runbook:").split("(")[0].strip()
    keywords = {
        "credential-dumping": ("credential dump", "lsass", "mimikatz", "credential theft"),
        "ransomware-precursors": ("ransomware", "shadow cop"),
        "encoded-powershell": ("powershell", "encoded command"),
        "lolbin-download": ("lolbin", "living off the land", "certutil", "bitsadmin"),
        "prompt-injection-in-alerts": ("prompt injection", "injection"),
        "approvals": ("approv", "reject"),
        "false-positive-feedback": ("feedback", "false positive", "disposition"),
    }.get(book.name, ())
    return topic in q or any(k in q for k in keywords)


async def runbook_answer(session: ChatSession, question: str) -> str:
    picked = fitting_runbooks(session, question)
    seq = None
    if not picked:
        # Nothing names it and no technique matches: the knowledge base's closest runbook, as a lookup the
        # answer can cite.
        context = " ".join([session.alert.title, *sorted(case_techniques(session))])
        seq, output = await session.lookup_output(
            "knowledge_search",
            {"query": f"{question} {context}"[:2000], "k": 3, "kinds": ["runbook"]},
            KnowledgeSearchResult,
        )
        hits = output.hits if output else ()
        if not hits:
            return f"No runbook fits {session.case.id}{cite(seq)}."
        books = {b.source: b for b in runbooks()}
        top = books.get(hits[0].source)
        if top is None:
            return f"No runbook fits {session.case.id}{cite(seq)}."
        picked = [(top, "it is the knowledge base's closest match", (seq,))]
    lines = []
    for book, why, seqs in picked:
        lines.append(f"{book.title} ({book.source}) fits because {why}{cite(*seqs)}.")
        for heading, body in book.sections:
            if heading.lower() in (
                "triage",
                "respond",
                "contain",
                "deciding",
                "how soctriage handles it",
                "how",
            ):
                steps = " ".join(body.split())
                lines.append(f"{heading}: {steps}")
    return "\n".join(lines)


async def knowledge_answer(session: ChatSession, question: str) -> str:
    seq, output = await session.lookup_output(
        "knowledge_search", {"query": question, "k": 3, "kinds": []}, KnowledgeSearchResult
    )
    hits = output.hits if output else ()
    if not hits:
        return f"The knowledge base has nothing on that{cite(seq)}."
    lines = [f"From the knowledge base{cite(seq)}:"]
    for hit in hits:
        lines.append(f"- {hit.title} ({hit.source}): {' '.join(hit.text.split())[:600]}")
    return "\n".join(lines)
