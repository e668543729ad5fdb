"""The case assistant through its Python API and `soctriage chat`: answers grounded in the ledger with
citations, chat_message entries, proposals through the guard and approval path, a streamed model answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2
from fakes import ScriptedOpenAI, error, reply, tool_call_reply
from soctriage.agents.assistant import citations
from soctriage.agents.lifecycle import Decision
from soctriage.agents.run import Triager, TriageResult
from soctriage.service.cli import app
from soctriage.service.config import Settings
from test_graph import llm_settings, sample
from typer.testing import CliRunner

LSASS = "crowdstrike-lsass-dump.json"
SUDO = "wazuh-admin-sudo-benign.json"


def test_citations_keep_only_seqs_that_exist() -> None:
    assert citations("a [seq 3] b [seq 1, 7] c [seq 99] [SEQ 3]", head=10) == ((3, 1, 7), (99,))


async def test_builtin_answers_cite_the_ledger_and_every_turn_is_recorded(home: Path) -> None:
    async with Triager(Settings(home=home)) as triager:
        case = await triager.triage(sample(LSASS))
        assistant = triager.assistant()
        summary = await assistant.ask(case.case_id, "Summarize this case", by="alice")
        entries = {e.seq: e for e in triager.store.entries(case.case_id)}
        verdict_seq = next(seq for seq, e in entries.items() if e.kind == "verdict")
        assert "true_positive" in summary.answer and verdict_seq in summary.citations
        asked, answered = entries[summary.question_seq], entries[summary.answer_seq]
        assert (asked.kind, asked.actor, asked.payload["text"]) == (
            "chat_message",
            "human:alice",
            "Summarize this case",
        )
        assert (answered.kind, answered.actor) == ("chat_message", "assistant")
        assert (
            answered.payload["citations"] == list(summary.citations)
            and answered.payload["in_reply_to"] == asked.seq
        )

        why = await assistant.ask(case.case_id, "Why is it waiting?", by="alice")
        assert "awaiting_approval" in why.answer and "domain_controller" in why.answer
        evidence = await assistant.ask(case.case_id, "What evidence is the verdict based on?", by="alice")
        assert set(entries[verdict_seq].payload["evidence"]) <= set(evidence.citations)
        actions = await assistant.ask(case.case_id, "Which actions are pending approval?", by="alice")
        assert "isolate_host" in actions.answer and "needs_approval" in actions.answer
        entities = await assistant.ask(case.case_id, "What was the command line and the host?", by="alice")
        assert "comsvcs.dll" in entities.answer and "DC01" in entities.answer and 1 in entities.citations
        runbook = await assistant.ask(case.case_id, "How do I respond to credential dumping?", by="alice")
        assert "krbtgt" in runbook.answer and "credential-dumping.md" in runbook.answer
        fitting = await assistant.ask(case.case_id, "What runbook applies?", by="alice")
        assert "credential-dumping.md" in fitting.answer and "T1003.001" in fitting.answer
        assert "false-positive" not in fitting.answer and "prompt-injection" not in fitting.answer
        assert {1, verdict_seq} <= set(fitting.citations)
        assert triager.store.verify([case.case_id]).ok


async def test_what_did_we_decide_last_time_reads_similar_cases(home: Path) -> None:
    settings = Settings(home=home)
    async with Triager(settings) as triager:
        first = await triager.triage(sample(SUDO))
        from soctriage.agents.feedback import give_feedback

        give_feedback(
            triager.deps, first.case_id, by="bob", disposition="false_positive", reason_code="admin", note=""
        )
        second = await triager.triage(sample(SUDO).model_copy(update={"id": "wazuh-2"}))
        answer = await triager.assistant().ask(second.case_id, "What did we decide last time?", by="alice")
        assert first.case_id in answer.answer and "false_positive" in answer.answer
        assert "confirmed by an analyst" in answer.answer


async def test_a_proposal_waits_for_a_human_then_runs_once_through_the_guard(home: Path) -> None:
    async with Triager(Settings(home=home)) as triager:
        case = await triager.triage(sample(SUDO))
        assert case.status == "escalated"
        assistant = triager.assistant()
        answer = await assistant.ask(case.case_id, "Please open a ticket for this", by="alice")
        [proposal] = answer.proposals
        assert (proposal.id, proposal.tool, proposal.status, proposal.guard.decision) == (
            "C1",
            "create_ticket",
            "awaiting_approval",  # the guard allows tickets, but nobody but the model asked for this one
            "allow",
        )
        view = await triager.result(case.case_id)
        assert view.status == "awaiting_approval"
        assert [(a.id, a.status) for a in view.actions] == [("A1", "executed"), ("C1", "awaiting_approval")]
        done = await triager.decide(
            case.case_id, Decision(action_id="C1", approve=True, by="bob", reason="ok")
        )
        assert [(a.id, a.status) for a in done.actions] == [("A1", "executed"), ("C1", "executed")]
        assert done.status == "escalated"  # back where it was: a ticket is not containment
        kinds = [(e.kind, e.actor) for e in triager.store.entries(case.case_id)][-6:]
        assert ("approval_decided", "human:bob") in kinds and ("action_executed", "response_agent") in kinds
        denied = await assistant.ask(case.case_id, "block 8.8.8.8", by="alice")
        assert not denied.proposals  # not an entity of this case: nothing to propose


def test_cli_chat_then_approve_the_proposal(home: Path) -> None:
    async def triage() -> TriageResult:
        async with Triager(Settings(home=home)) as triager:
            return await triager.triage(sample(SUDO))

    case = asyncio.run(triage())
    runner = CliRunner()
    asked = runner.invoke(app, ["chat", case.case_id, "open a ticket for the admin", "--by", "carol"])
    assert asked.exit_code == 0, asked.output
    assert "Proposed C1: create_ticket" in asked.output and "[ledger: question seq" in asked.output
    approved = runner.invoke(app, ["approve", case.case_id, "C1", "--by", "dave"])
    assert approved.exit_code == 0, approved.output
    assert "C1:create_ticket" in approved.output and "executed" in approved.output
    repl = runner.invoke(app, ["chat", case.case_id, "--by", "carol"], input="why escalated?\n\nexit\n")
    assert repl.exit_code == 0 and "inconclusive" in repl.output
    missing = runner.invoke(app, ["chat", "case-nope", "hi"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


async def test_model_answer_streams_calls_read_tools_and_cites(home: Path) -> None:
    settings = llm_settings(home, embedder="hashing")
    async with Triager(Settings(home=home)) as builtin:
        case = await builtin.triage(sample(SUDO))
    script = [
        tool_call_reply(("similar_cases", {"query": "sudo by admin"})),
        reply(
            "The alert [seq 1] shows sudo by an admin; no earlier case matches [seq {lookup}]. See [seq 999]."
        ),
    ]
    with ScriptedOpenAI(script) as fake:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake))
        async with Triager(settings, http_client=client) as triager:
            head = triager.store.head_seq(case.case_id)
            lookup = head + 4  # question, llm_call, tool_call, tool_result
            fake.steps[1] = reply(script[1].content.format(lookup=lookup))  # type: ignore[union-attr]
            pieces = []
            async for event in triager.assistant().stream(
                case.case_id, "Anything like this before?", by="al"
            ):
                pieces.append(event)
    *tokens, answer = pieces
    assert len(tokens) > 5 and "".join(tokens).strip() == answer.answer
    assert answer.citations == (1, lookup) and answer.model == "openai:fake-model"
    assert all(r.body.get("stream") is True for r in fake.requests)
    tool_names = {t["function"]["name"] for t in fake.requests[0].tools or []}
    assert {
        "similar_cases",
        "knowledge_search",
        "propose_action",
    } <= tool_names and "isolate_host" not in tool_names
    assert (
        fake.requests[1].messages[-1]["role"] == "tool"
        and f'"seq": {lookup}' in fake.requests[1].messages[-1]["content"]
    )
    system = fake.requests[0].messages[0]["content"]
    assert "<untrusted-data" in system and "seq 1 alert_received" in system
    async with Triager(Settings(home=home)) as triager:
        entries = triager.store.entries(case.case_id)
        recorded = entries[answer.answer_seq - 1].payload
        assert recorded["invalid_citations"] == [999]
        calls = [e for e in entries if e.kind == "llm_call" and e.actor == "assistant"]
        assert len(calls) == 2 and calls[1].payload["total_tokens"] == 15


async def test_model_failure_falls_back_to_the_builtin_answer(home: Path) -> None:
    settings = llm_settings(home, embedder="hashing")
    async with Triager(Settings(home=home)) as builtin:
        case = await builtin.triage(sample(SUDO))
    with ScriptedOpenAI([error(503), error(503), error(503)]) as fake:
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake))
        async with Triager(settings, http_client=client) as triager:
            answer = await triager.assistant().ask(case.case_id, "summarize", by="al")
    assert answer.model.startswith("builtin (fallback") and "inconclusive" in answer.answer
    assert json.dumps(answer.citations)


async def test_the_timeline_reads_threat_intel_hits(home: Path) -> None:
    async with Triager(Settings(home=home)) as triager:
        case = await triager.triage(sample("defender-encoded-powershell.json"))
        answer = await triager.assistant().ask(case.case_id, "Show me the timeline", by="alice")
    # Intel hits carry `detail`, not a knowledge-base `title`: the timeline once failed on them.
    assert "threat_intel_lookup" in answer.answer and "PowerShell stager" in answer.answer
