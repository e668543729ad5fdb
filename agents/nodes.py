"""The graph's nodes, one function each. Routing is declared in the `Command[Literal[...]]` return types.

Each node writes what it did to the case ledger before it returns, so the transcript is complete even when a
run stops half-way; the LangGraph checkpoint only records where to resume.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from soctriage.agents.analyst import Analyst, Step, Task
from soctriage.agents.builtin import independent_objection
from soctriage.agents.deps import Deps
from soctriage.agents.grouping import verdict_floor
from soctriage.agents.injection import scan_alert
from soctriage.agents.lifecycle import Decision, containment, pending
from soctriage.agents.llm_result import LLMError, ModelUnavailableError
from soctriage.agents.response import apply_decision, execute, plan_actions
from soctriage.agents.state import DISPOSITIONS_AUTO_CLOSE, Finding, TriageState
from soctriage.service.domain import Alert, LedgerEntry, Verdict, canonical_json
from soctriage.service.ledger_events import (
    LedgerRecord,
    Reasoning,
    ToolCallRequested,
    ToolResultRecorded,
    VerdictRecorded,
)
from soctriage.service.ledger_notes import (
    AutoCloseFloor,
    IndexFailed,
    ModelFallback,
    PossiblePromptInjection,
    VerdictRejected,
)
from soctriage.service.store import EvidenceError
from soctriage.tools.registry import Registry, ToolOutcome
from soctriage.tools.retrieval_docs import case_document

Ctx = Runtime[Deps]


def _task(state: TriageState, alert: Alert, **extra: Any) -> Task:
    return Task(
        alert=alert,
        alert_seq=state["alert_seq"],
        injection=state.get("injection", ()),
        assessment=state.get("assessment"),
        findings=state.get("findings", ()),
        verdict=state.get("verdict"),
        **extra,
    )


async def _ask(
    runtime: Ctx, state: TriageState, actor: str, method: str, task: Task
) -> tuple[Step[Any], dict[str, Any], list[LedgerRecord]]:
    """Ask the case's analyst; when the model endpoint stays down, fall back to builtin. Also returns the ledger
    records of the model calls (and of why it fell back), for the node to write with its own in one transaction.
    """
    deps = runtime.context
    analyst: Analyst = deps.analyst if state.get("model") != deps.builtin.name else deps.builtin
    update: dict[str, Any] = {}
    records: list[LedgerRecord] = []
    try:
        step = await getattr(analyst, method)(task)
    except LLMError as exc:
        records.append((actor, "llm_call", exc.result.ledger_event(analyst.name)))
        reason = (
            f"model endpoint unavailable after {len(exc.result.attempts)} attempt(s): {exc.result.error}"
            if isinstance(exc, ModelUnavailableError)
            else f"model answer unusable: {exc}"
        )
        records.append(("system", "note", ModelFallback(from_=analyst.name, reason=reason)))
        update = {"model": deps.builtin.name, "escalation": f"fell back to builtin: {reason}"}
        step = await getattr(deps.builtin, method)(task)
    records += [(actor, "llm_call", call) for call in step.calls]
    return step, update, records


async def _write(deps: Deps, state: TriageState, records: list[LedgerRecord]) -> list[LedgerEntry]:
    """One transaction for a node's ledger records, in order (none for no records)."""
    return await deps.store.io(deps.store.append_many, state["case_id"], records)


async def ingest(state: TriageState, runtime: Ctx) -> Command[Literal["triage"]]:
    deps = runtime.context
    markers = scan_alert(await deps.alert(state))
    injection = PossiblePromptInjection(markers=list(markers), effect="never auto-closed")
    await deps.store.io(
        deps.store.set_status,
        state["case_id"],
        "triaging",
        actor="system",
        reason=f"triage by {deps.analyst.name}",
        then=[("system", "note", injection)] if markers else [],
    )
    return Command(goto="triage", update={"injection": markers, "model": deps.analyst.name, "findings": ()})


async def triage(state: TriageState, runtime: Ctx) -> Command[Literal["enrich", "verdict"]]:
    deps = runtime.context
    task = _task(state, await deps.alert(state))
    step, update, records = await _ask(runtime, state, "triage_agent", "triage", task)
    assessment = step.answer
    reasoning = Reasoning.model_validate(
        {
            "model": update.get("model", state["model"]),
            **assessment.model_dump(mode="json"),
            **step.reasoning,
        }
    )
    await _write(deps, state, [*records, ("triage_agent", "reasoning", reasoning)])
    # Always enrich: a benign call rests on what the tools found, never on the first look at the alert's text.
    return Command(goto="enrich", update={"assessment": assessment, "enrich_steps": 0, **update})


async def enrich(state: TriageState, runtime: Ctx) -> Command[Literal["enrich", "verdict"]]:
    deps = runtime.context
    steps = state.get("enrich_steps", 0)
    if steps >= deps.settings.max_enrich_steps:
        return Command(goto="verdict")
    tools = tuple(deps.registry.openai_tools(deps.registry.names("read")))
    alert = await deps.alert(state)
    task = _task(state, alert, step=steps, max_steps=deps.settings.max_enrich_steps, tools=tools)
    step, update, records = await _ask(runtime, state, "enrichment_agent", "plan_enrichment", task)
    builtin_turn = update.get("model", state["model"]) == deps.builtin.name
    # A model's calls are capped per round; the builtin's plan is bounded by its own design.
    asked = list(
        step.answer.calls if builtin_turn else step.answer.calls[: deps.settings.max_tool_calls_per_step]
    )
    calls = [(call, False) for call in asked]
    done = step.answer.final or not asked
    if not builtin_turn:
        # The baseline: the builtin's lookups about the alert's own entities run whatever a model asks for,
        # so the independent check under every auto-close has its evidence even from a model that looks
        # nowhere, or elsewhere.
        baseline = (await deps.builtin.plan_enrichment(task)).answer
        wanted = {(c.tool, canonical_json(c.args)) for c in asked}
        calls += [(c, True) for c in baseline.calls if (c.tool, canonical_json(c.args)) not in wanted]
        done = done and baseline.final
    if not calls:
        await _write(deps, state, records)
        return Command(goto="verdict", update=update)
    ctx = deps.tool_context(state, alert, state.get("findings", ()))
    # Read-only lookups are independent of each other: run them together, then write the model calls, and each
    # lookup and its result in the order they were asked for, to the ledger in one transaction.
    outcomes = await asyncio.gather(*(_run_read_tool(deps, ctx, c.tool, c.args) for c, _ in calls))
    lookups: list[LedgerRecord] = []
    for (call, baseline_call), outcome in zip(calls, outcomes, strict=True):
        request = ToolCallRequested.model_validate(
            {"tool": call.tool, "args": call.args} | ({"baseline": True} if baseline_call else {})
        )
        lookups.append(("enrichment_agent", "tool_call", request))
        lookups.append(("enrichment_agent", "tool_result", outcome))
    written = (await _write(deps, state, [*records, *lookups]))[len(records) :]
    findings = list(state.get("findings", ()))
    for (call, _), outcome, result_entry in zip(calls, outcomes, written[1::2], strict=True):
        findings.append(_finding(deps.registry, call.tool, call.args, result_entry.seq, outcome))
    target = "verdict" if done else "enrich"
    return Command(goto=target, update={"findings": tuple(findings), "enrich_steps": steps + 1, **update})


async def _run_read_tool(deps: Deps, ctx: Any, tool: str, args: dict[str, Any]) -> ToolResultRecorded:
    """The `tool_result` of one enrichment call; anything but a read-tier tool is refused here."""
    if tool not in deps.registry.names("read"):
        return ToolResultRecorded.model_validate(
            {"tool": tool, "status": "refused", "error": "only read-tier tools run during enrichment"}
        )
    outcome: ToolOutcome = await deps.registry.run(ctx, tool, args)
    return outcome.ledger_event()


def _finding(
    registry: Registry, tool: str, args: dict[str, Any], seq: int, result: ToolResultRecorded
) -> Finding:
    return Finding(
        seq=seq,
        tool=tool,
        args=args if result.args is None else result.args,
        ok=result.status == "ok",
        summary=_summarize(registry, result),
        output=result.output or {},
        entities=tuple(result.entities),
        confirmed=tuple(result.confirmed),
    )


def _summarize(registry: Registry, result: ToolResultRecorded) -> str:
    if result.status != "ok":
        return f"error ({result.error_kind or result.status}): {result.error}"
    return registry.output(result.tool, result.output or {}).summary()


async def verdict(state: TriageState, runtime: Ctx) -> Command[Literal["verdict", "respond", "close"]]:
    deps = runtime.context
    attempts = state.get("verdict_attempts", 0)
    correction = state.get("verdict_correction") if attempts else None
    alert = await deps.alert(state)
    task = _task(state, alert, correction=correction)
    step, update, records = await _ask(runtime, state, "triage_agent", "decide", task)
    answer: Verdict = step.answer
    problem = None if answer.evidence else "no evidence cited"
    prior = state.get("prior_verdict")
    kept: dict[str, Any] = {}
    if problem is None and prior is not None:
        # A grouped alert triages its case again; what the case already established stands.
        kept = {"rerun_disposition": answer.disposition, "case_disposition": prior.disposition}
        answer = verdict_floor(prior, answer)
    if problem is None:
        payload = VerdictRecorded.model_validate(
            {
                "model": update.get("model", state["model"]),
                **answer.model_dump(mode="json"),
                **step.reasoning,
                **kept,
            }
        )
        floor = None
        if answer.disposition in DISPOSITIONS_AUTO_CLOSE and not state.get("escalation"):
            objection = _auto_close_objection(state, alert)
            floor = AutoCloseFloor(disposition=answer.disposition, reason=objection) if objection else None
        try:
            # The model calls that made the verdict, the verdict, and any note on it: one transaction.
            notes: list[LedgerRecord] = [("system", "note", floor)] if floor else []
            entries = [*records, ("triage_agent", "verdict", payload), *notes]
            await deps.store.io(deps.store.set_verdict, state["case_id"], answer, entries)
        except EvidenceError as exc:
            problem = f"evidence cites ledger entries that do not exist: {exc.missing}"
        else:
            if floor is not None:
                update["escalation"] = f"not auto-closed: {floor.reason}"
    if problem is not None:
        await _write(deps, state, [*records, ("system", "note", VerdictRejected(reason=problem))])
        if attempts == 0:
            return Command(
                goto="verdict", update={"verdict_attempts": 1, "verdict_correction": problem, **update}
            )
        return Command(goto="close", update={"escalation": f"verdict rejected twice: {problem}", **update})
    return Command(goto="respond", update={"verdict": answer, **update})


def _auto_close_objection(state: TriageState, alert: Alert) -> str | None:
    """Why a benign verdict may not close the case by itself, whoever gave it: no enrichment evidence, or the
    builtin's independent evidence (intel, lineage, techniques, injection, the vendor) says true positive."""
    if not any(f.ok for f in state.get("findings", ())):
        return "no enrichment evidence was gathered, and a benign call needs it"
    return independent_objection(_task(state, alert))


async def respond(state: TriageState, runtime: Ctx) -> Command[Literal["act", "close"]]:
    deps = runtime.context
    answer = state["verdict"]
    if answer.disposition in DISPOSITIONS_AUTO_CLOSE:
        return Command(goto="close")
    # Undoing containment is never on offer to an agent (`human_only` tools); the guard refuses it too.
    names = deps.registry.agent_tools("contain", "destructive")
    alert = await deps.alert(state)
    task = _task(state, alert, tools=tuple(deps.registry.openai_tools(names)))
    step, update, records = await _ask(runtime, state, "response_agent", "respond", task)
    await _write(deps, state, records)
    ctx = deps.tool_context(state, alert, state.get("findings", ()))
    # A model may propose the same call twice; it is one action (and one idempotency key).
    unique = {(p.tool, canonical_json(p.args)): p for p in reversed(step.answer.actions)}
    # A case triaged again for a grouped alert keeps its actions; numbering goes on so ids stay unique.
    earlier = state.get("actions", ())
    taken = {(a.tool, canonical_json(a.guard.args)) for a in earlier}
    proposals = [
        p
        for p in step.answer.actions
        if unique.get(key := (p.tool, canonical_json(p.args))) is p and key not in taken
    ]
    numbered = [(f"A{n}", proposal) for n, proposal in enumerate(proposals, start=len(earlier) + 1)]
    planned = plan_actions(deps, state["case_id"], ctx, numbered)
    return Command(goto="act", update={"actions": (*earlier, *planned), **update})


async def act(state: TriageState, runtime: Ctx) -> Command[Literal["approval", "close"]]:
    """Carry out every action cleared to run: at once for policy-allowed ones, after the human for the rest."""
    deps = runtime.context
    ctx = deps.tool_context(state, await deps.alert(state), state.get("findings", ()))
    executed = await deps.store.io(deps.executed_keys, state["case_id"])
    actions = [
        await execute(deps, state["case_id"], ctx, a, executed) if a.status == "approved" else a
        for a in state.get("actions", ())
    ]
    update: dict[str, Any] = {"actions": tuple(actions)}
    held = [
        a.id
        for a in actions
        if a.status == "awaiting_approval" and a.guard.rule_id.startswith("rate_limits:")
    ]
    if held and not state.get("escalation"):
        # The flood that spent the budget may be the attack itself: a human looks at the whole case.
        update["escalation"] = f"action budget spent: {', '.join(held)} wait for a human"
    return Command(goto="approval" if pending(actions) else "close", update=update)


async def approval(state: TriageState, runtime: Ctx) -> Command[Literal["act"]]:
    """Only interrupts: the decision comes back through `Command(resume=...)`; the next node acts on it."""
    deps = runtime.context
    actions = state.get("actions", ())
    waiting = [a.model_dump(mode="json") for a in pending(actions)]
    # A case headed for escalation (its model fell back to builtin) waits in an analyst's queue as
    # `escalated`, with its actions still pending; otherwise it waits for an approver.
    escalation = state.get("escalation")
    status = "escalated" if escalation else "awaiting_approval"
    reason = f"{escalation}; actions need approval" if escalation else "actions need approval"
    # A resumed run re-enters this node from the top, so the status is only moved once.
    case = deps.store.get_case(state["case_id"])
    if case is not None and case.status != status:
        deps.store.set_status(state["case_id"], status, actor="guard", reason=reason)
    # The resume value is a `Decision` as JSON: checkpoints hold plain data.
    decision = Decision.model_validate(interrupt({"case_id": state["case_id"], "pending": waiting}))
    decided = tuple(apply_decision(deps, state["case_id"], a, decision) for a in actions)
    return Command(goto="act", update={"actions": decided})


async def close(state: TriageState, runtime: Ctx) -> dict[str, Any]:
    deps = runtime.context
    status, reason = final_status(state, deps.settings.auto_close_min_confidence, deps.registry)
    case = await deps.store.io(deps.store.set_status, state["case_id"], status, actor="system", reason=reason)
    try:
        # Finished cases feed `similar_cases`; the index is derived data, so a failure only costs recall.
        # An analyst's word outlives a re-close.
        feedback = await deps.store.io(deps.store.entries, case.id, kind="feedback")
        # Opened on a thread: the first close in a process may load the index and its embedding model.
        index = await asyncio.to_thread(deps.connectors.retrieval.get)
        alert = await deps.alert(state)
        index.submit(case_document(case, alert, feedback[-1].payload if feedback else None))
    except Exception as exc:
        deps.record(case.id, "system", "note", IndexFailed(reason=f"{type(exc).__name__}: {exc}"))
    return {}


def final_status(state: TriageState, min_confidence: float, registry: Registry) -> tuple[str, str]:
    """The case's status when its graph ends. Only a benign or false-positive verdict closes a case; a true
    positive is contained, or escalated to a human, never closed by the system."""
    answer = state.get("verdict")
    actions = state.get("actions", ())
    if state.get("escalation"):
        return "escalated", state["escalation"] or "escalated"
    if answer is None:
        return "escalated", "no verdict"
    if containment(actions, registry) is not None:
        return "contained", "containment actions carried out"
    if answer.disposition in DISPOSITIONS_AUTO_CLOSE:
        if state.get("injection"):
            return "escalated", "alert text tried to instruct the analyst; a human must close it"
        if answer.confidence < min_confidence:
            return "escalated", f"confidence {answer.confidence} below auto-close threshold {min_confidence}"
        return "closed", f"auto-closed as {answer.disposition}"
    if answer.disposition == "inconclusive":
        return "escalated", "inconclusive: needs an analyst"
    if any(a.status in ("rejected", "expired", "denied", "failed") for a in actions):
        return "escalated", "true positive whose response was not carried out in full"
    return "escalated", "true positive with no containment carried out: an analyst decides what happens next"
