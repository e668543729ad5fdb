"""Where the runner calls a sync tool: in place when it waits on nothing, on a worker thread when it waits on
I/O, and for a case-store read in place on SQLite and on a worker thread on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from soctriage.service.config import Settings
from soctriage.service.domain import Frozen
from soctriage.tools.registry import Registry
from soctriage.tools.tool_spec import ToolOutput, WaitsOn, tool
from tools_support import make_ctx


class NoArgs(Frozen):
    pass


class Where(ToolOutput):
    thread: str

    def summary(self) -> str:
        return f"ran on {self.thread}"


def _tool(waits_on: WaitsOn | None) -> object:
    def where(args: NoArgs) -> Where:
        """Reports the thread it ran on."""
        return Where(thread=threading.current_thread().name)

    return tool(tier="read")(where) if waits_on is None else tool(tier="read", waits_on=waits_on)(where)


@pytest.mark.parametrize(
    ("waits_on", "database_url", "in_place"),
    [
        ("nothing", None, True),
        ("nothing", "postgresql://db.example/soc", True),
        ("store", None, True),
        ("store", "postgresql://db.example/soc", False),
        ("io", None, False),
        (None, None, False),  # a sync tool that says nothing is assumed to block
    ],
)
def test_sync_tools_run_where_what_they_wait_on_says(
    waits_on: WaitsOn | None, database_url: str | None, in_place: bool, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    ctx = make_ctx(settings=settings)

    async def run() -> tuple[str, str]:
        outcome = await Registry([_tool(waits_on)]).run(ctx, "where", {})
        assert outcome.ok, outcome.error
        return outcome.output["thread"], threading.current_thread().name

    ran_on, loop_thread = asyncio.run(run())
    assert (ran_on == loop_thread) is in_place
