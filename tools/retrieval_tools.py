"""The read-tier retrieval tools: `similar_cases` (the tenant's past cases and their final dispositions) and
`knowledge_search` (ATT&CK techniques, LOLBins and the runbooks in tools/data/runbooks)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pydantic import Field
from soctriage.service.alert_entities import alert_text
from soctriage.service.domain import Frozen
from soctriage.tools.attack import AttackCatalog
from soctriage.tools.datafiles import bundled
from soctriage.tools.lolbins import LolbinCatalog
from soctriage.tools.retrieval_docs import KnowledgeDoc, KnowledgeHit, KnowledgeKind, SimilarCase
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

RUNBOOKS = bundled("runbooks")


class Runbook(Frozen):
    """A runbook file: its title, the ATT&CK techniques its intro line names, and its `##` sections."""

    name: str
    title: str
    source: str
    intro: str
    techniques: tuple[str, ...]
    sections: tuple[tuple[str, str], ...]


_TECHNIQUE = re.compile(r"\bT\d{4}(?:\.\d{3})?\b")


@cache
def runbooks(folder: Path = RUNBOOKS) -> tuple[Runbook, ...]:
    found = []
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title_match = re.search(r"^# (.+)$", text, re.M)
        parts = re.split(r"^## ", text, flags=re.M)
        intro = re.sub(r"^# .+$", "", parts[0], flags=re.M).strip()
        attack_line = next((line for line in intro.splitlines() if line.startswith("ATT&CK:")), "")
        sections = []
        for section in parts[1:]:
            heading, _, body = section.partition("\n")
            sections.append((heading.strip(), body.strip()))
        found.append(
            Runbook(
                name=path.stem,
                title=title_match.group(1).strip() if title_match else path.stem,
                source=f"tools/data/runbooks/{path.name}",
                intro=intro,
                techniques=tuple(_TECHNIQUE.findall(attack_line)),
                sections=tuple(sections),
            )
        )
    return tuple(found)


def runbook_docs(folder: Path = RUNBOOKS) -> list[KnowledgeDoc]:
    """One document per `##` section of each runbook, titled `<runbook> — <section>`."""
    return [
        KnowledgeDoc(
            id=f"runbook:{book.name}#{number}",
            kind="runbook",
            title=f"{book.title} — {heading}",
            text=f"{book.intro}\n{body}".strip(),
            source=book.source,
        )
        for book in runbooks(folder)
        for number, (heading, body) in enumerate(book.sections, start=1)
    ]


def knowledge_docs(attack: AttackCatalog, lolbins: LolbinCatalog) -> list[KnowledgeDoc]:
    docs = runbook_docs()
    names = {t.id: t.name for t in attack.techniques()}
    for technique in attack.techniques():
        if technique.revoked or technique.deprecated:
            continue
        parent = (
            f"; sub-technique of {technique.parent} {names.get(technique.parent, '')}"
            if technique.parent
            else ""
        )
        docs.append(
            KnowledgeDoc(
                id=f"attack:{technique.id}",
                kind="attack",
                title=f"{technique.id} {technique.name}",
                text=f"ATT&CK technique {technique.id} {technique.name}; tactics: {', '.join(technique.tactics)}"
                + parent,
                source=attack.source,
            )
        )
    for entry in lolbins.entries():
        docs.append(
            KnowledgeDoc(
                id=f"lolbin:{entry.name.lower()}",
                kind="lolbin",
                title=f"LOLBin {entry.name}",
                text=f"{entry.name}: {entry.description or ''}; abuse: {', '.join(entry.categories)};"
                f" ATT&CK {', '.join(entry.attack_ids)}",
                source=lolbins.source,
            )
        )
    return docs


@cache
def _knowledge(attack: AttackCatalog, lolbins: LolbinCatalog) -> tuple[KnowledgeDoc, ...]:
    return tuple(knowledge_docs(attack, lolbins))


class SimilarCasesInput(Frozen):
    query: str | None = Field(
        default=None,
        max_length=4000,
        description="what to look for; omit it to search with the case's own alert (title, rule, process,"
        " techniques, host, user)",
    )
    k: int | None = Field(default=None, ge=1, le=20, description="how many cases (default from settings)")
    include_this_case: bool = Field(
        default=False,
        description="also return this case itself when it is indexed (to rank it against others)",
    )


class SimilarCasesResult(ToolOutput):
    query: str
    cases: tuple[SimilarCase, ...]

    def summary(self) -> str:
        if not self.cases:
            return "no similar past case"
        return "; ".join(
            f"{c.case_id} {c.disposition or c.status} ({c.disposition_source}, similarity {c.similarity:.2f}"
            + (", near duplicate)" if c.near_duplicate else ")")
            for c in self.cases[:5]
        )


@tool(tier="read", timeout_s=10.0)
def similar_cases(ctx: ToolContext, args: SimilarCasesInput) -> SimilarCasesResult:
    """Find this tenant's past cases most similar to this alert (or to a query), with their final
    dispositions: `disposition_source` is `analyst` when a human confirmed it, `model` when it is the triage
    verdict. Use it to see how look-alike alerts were decided before."""
    text = args.query or alert_text(ctx.alert)
    k = args.k or ctx.settings.similar_cases_k
    exclude = [] if args.include_this_case else [ctx.case_id]
    found = ctx.connectors.retrieval.get().similar_cases(ctx.tenant, text, k, exclude=exclude)
    return SimilarCasesResult(query=text[:500], cases=tuple(found))


class KnowledgeSearchInput(Frozen):
    query: str = Field(min_length=1, max_length=2000, description="what to look up, in plain words")
    kinds: tuple[KnowledgeKind, ...] = Field(
        default=(), description="restrict to attack techniques, lolbins and/or runbooks; empty means all"
    )
    k: int = Field(default=4, ge=1, le=10)


class KnowledgeSearchResult(ToolOutput):
    hits: tuple[KnowledgeHit, ...]

    def summary(self) -> str:
        return "; ".join(h.title for h in self.hits[:5]) or "nothing found"


@tool(tier="read", timeout_s=60.0)
def knowledge_search(ctx: ToolContext, args: KnowledgeSearchInput) -> KnowledgeSearchResult:
    """Search the knowledge base: MITRE ATT&CK techniques, living-off-the-land binaries, and the SOC's
    runbooks (how to triage and respond to credential dumping, ransomware precursors, encoded PowerShell,
    LOLBin downloads, prompt injection in alerts, approvals)."""
    docs = _knowledge(ctx.connectors.attack, ctx.connectors.lolbins)
    hits = ctx.connectors.retrieval.get().search_knowledge(docs, args.query, args.k, args.kinds)
    return KnowledgeSearchResult(hits=tuple(hits))


TOOLS = [similar_cases, knowledge_search]
