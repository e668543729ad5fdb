"""`soctriage chat CASE [QUESTION]`: ask the case assistant once, or talk with it (no QUESTION) until EOF."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from soctriage.service import event_loop
from soctriage.service.cli_common import EXIT_BAD_INPUT, require_store
from soctriage.service.config import Settings
from soctriage.service.ingest.limits import MAX_PERSON_CHARS

if TYPE_CHECKING:
    from soctriage.agents.assistant import CaseAssistant


def register(app: typer.Typer) -> None:
    app.command()(chat)


def chat(
    case_id: Annotated[str, typer.Argument(help="case id")],
    question: Annotated[
        str | None, typer.Argument(help="the question; omit it to chat interactively")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="who is asking (recorded in the ledger); default: your login")
    ] = None,
) -> None:
    """Ask the case assistant about a case. Answers cite ledger entries as "seq N"; a requested action is
    proposed to the guard and waits for `soctriage approve`."""
    asker = (by or getpass.getuser()).strip()
    if not asker:
        typer.echo("--by: give the name of the person asking", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if len(asker) > MAX_PERSON_CHARS:
        typer.echo(f"--by: {len(asker)} characters, limit is {MAX_PERSON_CHARS}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    settings = Settings()
    require_store(settings)
    event_loop.run(_chat(settings, case_id, question, asker))


async def _chat(settings: Settings, case_id: str, question: str | None, by: str) -> None:
    from soctriage.agents.assistant import AssistantError
    from soctriage.agents.models import ModelConfigError
    from soctriage.agents.run import Triager

    try:
        triager = Triager(settings)
    except ModelConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    async with triager:
        assistant = triager.assistant()
        if triager.store.get_case(case_id) is None:
            typer.echo(f"case {case_id} does not exist", err=True)
            raise typer.Exit(EXIT_BAD_INPUT)
        try:
            if question is not None:
                await _answer(assistant, case_id, question, by)
                return
            typer.echo(f"Chatting with the assistant of {case_id} as {by}. Ctrl-D or 'exit' ends.", err=True)
            while True:
                line = await asyncio.to_thread(_prompt)
                if line is None or line.strip() in ("exit", "quit"):
                    return
                if line.strip():
                    await _answer(assistant, case_id, line, by)
        except AssistantError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from exc


def _prompt() -> str | None:
    try:
        return input("> " if sys.stdin.isatty() else "")
    except EOFError:
        return None


async def _answer(assistant: CaseAssistant, case_id: str, question: str, by: str) -> None:
    from soctriage.agents.assistant import ChatAnswer

    async for event in assistant.stream(case_id, question, by=by):
        if isinstance(event, ChatAnswer):
            cited = ", ".join(map(str, event.citations)) or "none"
            typer.echo(
                f"\n[ledger: question seq {event.question_seq}, answer seq {event.answer_seq}; cites {cited}]"
            )
        else:
            typer.echo(event, nl=False)
