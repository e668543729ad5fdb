"""Frozen tools for replay: read-tier tools answer with the output recorded in a past run's ledgers.

Replaying a run with another model or prompt should change only the model. So every read tool call whose
(alert, tool, args_hash) the original run made is answered from its recorded `tool_result` instead of calling
intel, inventory or lineage again. A call the original run never made is a miss: by default it runs live (and
is counted); with `strict` it fails like a broken tool, so the model cannot see data the baseline did not.
Response (side-effecting) tools are not frozen: the guard decides them afresh and dry-run simulates them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soctriage.service.domain import utc_now
from soctriage.service.ledger_events import AlertReceived, ToolResultRecorded, events_of
from soctriage.service.store.transcript import read_entries
from soctriage.tools.registry import Registry, ToolOutcome
from soctriage.tools.tool_spec import ToolContext, args_hash


class FrozenTools:
    """Recorded read-tool results of a run, keyed by (alert id, tool, args_hash)."""

    def __init__(
        self, recorded: dict[tuple[str, str, str], dict[str, Any]], *, origin: str, strict: bool
    ) -> None:
        self.recorded = recorded
        self.origin = origin
        self.strict = strict
        self.stats: Counter[str] = Counter()

    @classmethod
    def from_ledgers(cls, folder: Path, *, strict: bool = False) -> FrozenTools:
        """Index every ledger export (`*.jsonl`) in `folder`: alert id from seq 1, results from `tool_result`."""
        recorded: dict[tuple[str, str, str], dict[str, Any]] = {}
        for path in sorted(folder.glob("*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                entries = list(read_entries(fh, str(path)))
            received = events_of(entries, AlertReceived)
            if not received:
                continue
            for result in events_of(entries, ToolResultRecorded):
                if result.tier == "read" and result.args_hash:
                    recorded.setdefault((received[0].id, result.tool, result.args_hash), result.as_payload())
        return cls(recorded, origin=str(folder), strict=strict)

    def wrap(self, registry: Registry) -> FrozenRegistry:
        return FrozenRegistry(registry, self)


class FrozenRegistry(Registry):
    """The live registry's tools, but read calls come from the recording (see module doc)."""

    def __init__(self, live: Registry, frozen: FrozenTools) -> None:
        super().__init__(live.specs())
        self.live = live
        self.frozen = frozen

    async def run(self, ctx: ToolContext, name: str, args: Mapping[str, Any], **kwargs: Any) -> ToolOutcome:
        if name not in self or self.get(name).tier != "read":
            return await self.live.run(ctx, name, args, **kwargs)
        spec = self.get(name)
        try:
            norm = spec.normalize(args)
        except ValueError:
            return await self.live.run(ctx, name, args, **kwargs)  # the live runner reports bad args
        digest = args_hash(norm)
        payload = self.frozen.recorded.get((ctx.alert.id, name, digest))
        if payload is not None:
            self.frozen.stats["hit"] += 1
            fields = {k: v for k, v in payload.items() if k in ToolOutcome.model_fields and k != "case_id"}
            return ToolOutcome.model_validate({**fields, "case_id": ctx.case_id})
        self.frozen.stats["miss"] += 1
        if not self.frozen.strict:
            return await self.live.run(ctx, name, args, **kwargs)
        return ToolOutcome(
            case_id=ctx.case_id,
            tool=name,
            tier="read",
            args=norm,
            args_hash=digest,
            status="error",
            error_kind="tool",
            error=f"{name}: no recorded result for these arguments in the replayed run",
            started_at=utc_now(),
            duration_ms=0.0,
        )
