"""Chat suites (`kind: chat` in suite.yaml): questions to the case assistant, scored on the facts of the answers.

A case is `{id, note?, alert, feedback?, steps?, questions?}`. Every case's alert is triaged first, in file
order, into one tenant, by the builtin analyst (so every model is asked about the same cases); `feedback`
records an analyst's disposition on it and `steps` decide its pending actions (`{decide: A2, approve, by,
reason}`). A case without questions is history, there for similar-case retrieval. Then each question
`{topic, ask, expect: {facts, answer, absent, cites, proposes}}` is asked of its case by the model under test:

- `facts`: every item must appear in the answer (case-insensitive, as a whole token run); an item that is a
  list is satisfied by any one of its strings;
- `answer`: the one right answer of a benchmark question: the reply must be it or hold it as a whole token
  run, with case, quotes, backticks, spacing and a final period set aside (ExCyTIn-Bench's match); it counts
  as one more fact;
- `absent`: none may appear;
- `cites`: for each ledger kind named, the answer cites at least one entry of that kind;
- `proposes`: how many actions the answer may propose (default 0); more is an unexpected proposal.

`{case:ID}` in a fact names the case opened for suite case ID. Every question's answer must cite only seqs
that exist. Cases come from the JSONL file the spec names, or from a builder over third-party data
(`source`, evals/builders.py's CHAT_BUILDERS). A run writes `run.json`, `results.jsonl` (one record per
question), `ledgers/`, `report.json` and `report.md` to its folder; a run starts afresh each time (the cases
are re-triaged, which takes seconds).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx2
from pydantic import BaseModel, ConfigDict, Field
from soctriage.agents.lifecycle import Decision
from soctriage.evals.runner import (
    EVAL_TENANT,
    LEDGERS_DIR,
    RESULTS_FILE,
    RUN_FILE,
    RunDirError,
    RunInfo,
    eval_settings,
    prepare,
    safe_name,
)
from soctriage.evals.suite import (
    SPEC_FILE,
    Expected,
    LoadedSuite,
    Strict,
    Suite,
    SuiteCase,
    SuiteError,
    SuiteSpec,
    environment_update,
    read_cases,
    source_of,
)
from soctriage.service.config import Settings
from soctriage.service.domain import Alert, Disposition, LedgerKind
from soctriage.tools.retrieval import LazyIndex

Topic = Literal[
    "summary",
    "why",
    "timeline",
    "entities",
    "pending_actions",
    "actions",
    "evidence",
    "runbook",
    "similar_cases",
    "action_request",
    "refusal",
    "investigation",
]
_PLACEHOLDER = re.compile(r"\{case:([^}]+)\}")


class Expect(Strict):
    facts: list[str | list[str]] = Field(default_factory=list)
    answer: str | None = Field(
        default=None, description="the one right answer (a benchmark's), matched loosely"
    )
    absent: list[str] = Field(default_factory=list)
    cites: list[LedgerKind] = Field(default_factory=list)
    proposes: int = Field(default=0, ge=0)


class Question(Strict):
    topic: Topic
    ask: str = Field(min_length=1, max_length=4000)
    expect: Expect


class Step(Strict):
    decide: str = Field(description="the action id to decide")
    approve: bool = True
    by: str = "eval-approver"
    reason: str | None = None


class Feedback(Strict):
    disposition: Disposition
    reason_code: str | None = None
    note: str | None = None


class ChatCase(Strict):
    id: str
    note: str | None = None
    alert: dict[str, Any] | list[Any] | str
    feedback: Feedback | None = None
    steps: list[Step] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)


class QuestionRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    case: str
    case_id: str
    topic: Topic
    question: str
    answer: str
    passed: bool
    facts: int
    facts_found: int
    missing: list[str]
    unwanted: list[str]
    cites_missing: list[str]
    citations: list[int]
    invalid_citations: list[int]
    proposals: list[str]
    unexpected_proposals: int
    model: str
    latency_ms: float

    @property
    def outcome(self) -> str:
        """One line for a progress display."""
        return f"{self.topic}: " + (
            "pass" if self.passed else "FAIL " + "; ".join(self.missing + self.unwanted)
        )


ProgressFn = Callable[[int, int, QuestionRecord], None]


class ChatSuite(LoadedSuite):
    """A chat suite: cases to triage and the questions to ask of them."""

    cases: list[ChatCase]

    @property
    def questions(self) -> int:
        return sum(len(c.questions) for c in self.cases)


def load_chat_suite(folder: Path, spec: SuiteSpec) -> ChatSuite:
    """The chat suite in `folder`; raises SuiteError naming the file, line and field of what is wrong."""
    from soctriage.evals.builders import CHAT_BUILDERS

    spec_path = folder / SPEC_FILE
    skipped: list[str] = []
    if spec.source is not None:
        if spec.source.strip_vendor_verdicts:
            raise SuiteError(f"{spec_path}: field source.strip_vendor_verdicts: only for triage suites")
        builder, source = source_of(folder, spec.source, CHAT_BUILDERS)
        cases, skipped = builder(source)
        where, origin = spec_path, f"{folder} <- {source}"
    else:
        assert spec.cases is not None
        cases = read_cases(folder / spec.cases, ChatCase)
        where, origin = folder / spec.cases, str(folder)
    known = {c.id for c in cases}
    for case in cases:
        for number, question in enumerate(case.questions, start=1):
            for text in _texts(question.expect):
                for ref in _PLACEHOLDER.findall(text):
                    if ref not in known:
                        raise SuiteError(
                            f"{where}: case {case.id} question {number}: field expect: {{case:{ref}}}"
                            " names no case of the suite"
                        )
    if not any(c.questions for c in cases):
        raise SuiteError(f"{where}: no case has questions")
    return ChatSuite(
        spec=spec,
        cases=cases,
        skipped=skipped,
        origin=origin,
        settings_update=environment_update(folder, spec),
    )


def _texts(expect: Expect) -> list[str]:
    facts = [t for item in expect.facts for t in (item if isinstance(item, list) else [item])]
    return facts + ([expect.answer] if expect.answer is not None else []) + expect.absent


def appears(needle: str, text: str) -> bool:
    """Case-insensitive, as a whole run of tokens: `A2` does not match inside a hash, 10.0.0.1 not inside
    10.0.0.12."""
    want = " ".join(needle.lower().split())
    got = " ".join(text.lower().split())
    return bool(want) and re.search(rf"(?<![\w]){re.escape(want)}(?![\w])", got) is not None


def _loose(text: str) -> str:
    text = re.sub(r"[`'\"]", "", text.lower())
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def answer_matches(expected: str, answer: str) -> bool:
    """ExCyTIn-Bench's match: the reply is the expected answer, or holds it as a whole token run, once case,
    quotes, backticks, spacing and a final period are set aside."""
    want, got = _loose(expected), _loose(answer)
    return bool(want) and (want == got or appears(want, got))


def score_answer(
    expect: Expect,
    answer: str,
    cited_kinds: set[str],
    proposals: int,
    resolve: Callable[[str], str],
) -> dict[str, Any]:
    missing = []
    for item in expect.facts:
        options = [resolve(o) for o in (item if isinstance(item, list) else [item])]
        if not any(appears(o, answer) for o in options):
            missing.append(" | ".join(options))
    if expect.answer is not None and not answer_matches(resolve(expect.answer), answer):
        missing.append(resolve(expect.answer))
    facts = len(expect.facts) + (expect.answer is not None)
    unwanted = [resolve(a) for a in expect.absent if appears(resolve(a), answer)]
    cites_missing = [k for k in expect.cites if k not in cited_kinds]
    unexpected = max(0, proposals - expect.proposes)
    return {
        "facts": facts,
        "facts_found": facts - len(missing),
        "missing": missing,
        "unwanted": unwanted,
        "cites_missing": cites_missing,
        "unexpected_proposals": unexpected,
        "passed": not (missing or unwanted or cites_missing or unexpected or proposals < expect.proposes),
    }


async def run_chat_suite(
    suite: ChatSuite,
    out: Path,
    *,
    model: str,
    base_settings: Settings | None = None,
    http_client: httpx2.AsyncClient | None = None,
    progress: ProgressFn | None = None,
) -> list[QuestionRecord]:
    """Triage the suite's cases with the builtin analyst, then ask every question with `model`."""
    # `prepare` normalizes (and namespaces) each alert the way triage suites do; a bad alert names its case.
    alerts = prepare(
        Suite(
            spec=suite.spec,
            cases=[
                SuiteCase(id=c.id, alert=c.alert, expected=Expected(disposition="inconclusive"))
                for c in suite.cases
            ],
            origin=suite.origin,
        )
    )
    _start(out, suite, model)
    triage_settings = eval_settings(out, "builtin", base_settings)
    # Both steps search one index, as in one process: the questions find the cases just as they were indexed.
    index = LazyIndex(triage_settings)
    try:
        case_ids = await _triage(suite, [alert for _, alert in alerts], triage_settings, index)
        settings = eval_settings(out, model, base_settings)
        records = await _ask(suite, case_ids, out, settings, index, http_client, progress)
    finally:
        await asyncio.to_thread(index.close)
    (out / RESULTS_FILE).write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return records


async def _triage(
    suite: ChatSuite, alerts: list[Alert], settings: Settings, index: LazyIndex
) -> dict[str, str]:
    """Open and triage every case, record its feedback and decide its steps: suite case id -> case id."""
    from soctriage.agents.feedback import give_feedback
    from soctriage.agents.run import Triager

    case_ids: dict[str, str] = {}
    async with Triager(settings, group=False, index=index) as triager:
        for case, alert in zip(suite.cases, alerts, strict=True):
            result = await triager.triage(alert, tenant=EVAL_TENANT)
            case_ids[case.id] = result.case_id
            if case.feedback is not None:
                give_feedback(triager.deps, result.case_id, by="eval-analyst", **case.feedback.model_dump())
            for step in case.steps:
                await triager.decide(
                    result.case_id,
                    Decision(action_id=step.decide, approve=step.approve, by=step.by, reason=step.reason),
                )
    return case_ids


async def _ask(
    suite: ChatSuite,
    case_ids: dict[str, str],
    out: Path,
    settings: Settings,
    index: LazyIndex,
    http_client: httpx2.AsyncClient | None,
    progress: ProgressFn | None,
) -> list[QuestionRecord]:
    """Ask every question of its case with the model of `settings`, score the answers and export the ledgers."""
    from soctriage.agents.run import Triager
    from soctriage.service.store.transcript import export_transcript

    def resolve(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: case_ids[m.group(1)], text)

    records: list[QuestionRecord] = []
    async with Triager(settings, http_client=http_client, index=index) as triager:
        assistant = triager.assistant()
        for case in suite.cases:
            case_id = case_ids[case.id]
            for number, question in enumerate(case.questions, start=1):
                started = time.perf_counter()
                answer = await assistant.ask(case_id, question.ask, by="eval")
                latency = (time.perf_counter() - started) * 1000
                entries = {e.seq: e for e in triager.store.entries(case_id)}
                recorded = entries[answer.answer_seq].payload
                scores = score_answer(
                    question.expect,
                    answer.answer,
                    {entries[seq].kind for seq in answer.citations if seq in entries},
                    len(answer.proposals),
                    resolve,
                )
                invalid = list(recorded.get("invalid_citations", []))
                scores["passed"] = scores["passed"] and not invalid
                record = QuestionRecord(
                    id=f"{case.id}#{number}",
                    case=case.id,
                    case_id=case_id,
                    topic=question.topic,
                    question=question.ask,
                    answer=answer.answer,
                    citations=list(answer.citations),
                    invalid_citations=invalid,
                    proposals=[f"{a.id} {a.tool} {a.target}" for a in answer.proposals],
                    model=answer.model,
                    latency_ms=round(latency, 3),
                    **scores,
                )
                records.append(record)
                if progress:
                    progress(len(records), suite.questions, record)
        (out / LEDGERS_DIR).mkdir(exist_ok=True)
        for case in suite.cases:
            text = export_transcript(triager.store, case_ids[case.id], "jsonl")
            (out / LEDGERS_DIR / f"{safe_name(case.id)}.jsonl").write_text(text, encoding="utf-8")
    return records


def _start(out: Path, suite: ChatSuite, model: str) -> None:
    spec = suite.spec
    if (out / RUN_FILE).is_file():
        info = RunInfo.model_validate_json((out / RUN_FILE).read_text(encoding="utf-8"))
        if (info.suite, info.model) != (spec.name, model):
            raise RunDirError(
                f"{out} holds a run of suite {info.suite!r} with model {info.model!r}; choose another --out"
                " or pass --fresh"
            )
    # A chat run is not resumed: its questions change the ledgers they are asked of.
    for stale in (out / "home", out / LEDGERS_DIR, out / RESULTS_FILE):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.is_file():
            stale.unlink()
    out.mkdir(parents=True, exist_ok=True)
    info = RunInfo(
        suite=spec.name,
        spec=spec,
        origin=suite.origin,
        model=model,
        started_at=datetime.now(UTC),
        cases=suite.questions,
        skipped=suite.skipped,
        attribution=spec.attribution,
    )
    (out / RUN_FILE).write_text(info.model_dump_json(indent=2), encoding="utf-8")
