"""ATT&CK technique lookup: from a techniques JSONL (Settings `attack_data_path`), by default the ATT&CK
v18.1 Enterprise table shipped in tools/data/attack (with MITRE's copyright and licence in its NOTICE.md).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.service.jsonl import read_jsonl
from soctriage.tools.datafiles import bundled
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
ATTACK_DATA = bundled("attack")
BUNDLED_SOURCE = "ATT&CK v18.1 Enterprise (bundled)"


class AttackDataError(ConfigError):
    """The ATT&CK data file is malformed; the message names the file, the line and the field."""


class Technique(Frozen):
    id: str
    name: str
    tactics: tuple[str, ...] = ()
    is_subtechnique: bool = False
    parent: str | None = None
    revoked: bool = False
    revoked_by: str | None = None
    deprecated: bool = False


def normalize_technique_id(value: str) -> str:
    return value.strip().upper()


class AttackCatalog:
    def __init__(self, techniques: list[Technique], source: str) -> None:
        self._by_id = {t.id: t for t in techniques}
        self.source = source

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, technique_id: str) -> Technique | None:
        return self._by_id.get(normalize_technique_id(technique_id))

    def techniques(self) -> list[Technique]:
        return list(self._by_id.values())

    @classmethod
    def load(cls, path: Path | None) -> AttackCatalog:
        return cls.bundled() if path is None else cls.from_jsonl(path)

    @classmethod
    def bundled(cls) -> AttackCatalog:
        return _bundled_catalog()

    @classmethod
    def from_jsonl(cls, path: Path, source: str | None = None) -> AttackCatalog:
        """One technique per line: `{id, name, tactics, is_subtechnique, parent, revoked, revoked_by, …}`;
        other keys (platforms, urls, STIX ids) are ignored."""
        techniques = []
        for lineno, row in read_jsonl(path, "ATT&CK data", AttackDataError):
            try:
                techniques.append(Technique.model_validate({k: row.get(k) for k in _FIELDS if k in row}))
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"])
                raise AttackDataError(f"{path}:{lineno}: field {field!r}: {err['msg']}") from exc
        return cls(techniques, source=source or str(path))


_FIELDS = tuple(Technique.model_fields)


@cache
def _bundled_catalog() -> AttackCatalog:
    # Read once per process: every Triager builds its connectors, and the table never changes.
    return AttackCatalog.from_jsonl(ATTACK_DATA / "techniques.jsonl", source=BUNDLED_SOURCE)


class AttackLookupInput(Frozen):
    technique_id: str = Field(description="ATT&CK technique id such as T1059 or T1059.001")


class AttackLookupResult(ToolOutput):
    technique_id: str
    status: Literal["found", "revoked", "unknown"]
    technique: Technique | None = None
    parent: Technique | None = None
    replacement: Technique | None = Field(default=None, description="what a revoked id was replaced by")
    source: str

    def summary(self) -> str:
        if self.technique is None:
            return f"{self.technique_id}: not in {self.source}"
        tactics = ", ".join(self.technique.tactics) or "no tactic"
        line = f"{self.technique_id} {self.technique.name} ({tactics})"
        if self.parent is not None:
            line += f", a sub-technique of {self.parent.id} {self.parent.name}"
        if self.replacement is not None:
            line += f", revoked for {self.replacement.id} {self.replacement.name}"
        elif self.status == "revoked":
            line += ", revoked"
        return line


@tool(tier="read", timeout_s=5.0)
async def attack_lookup(ctx: ToolContext, args: AttackLookupInput) -> AttackLookupResult:
    """Look up a MITRE ATT&CK technique by id: its name, tactics, parent technique and whether it is a
    sub-technique. A revoked id returns the technique that replaced it."""
    catalog = ctx.connectors.attack
    tid = normalize_technique_id(args.technique_id)
    technique = catalog.get(tid) if _ID.match(tid) else None
    if technique is None:
        return AttackLookupResult(technique_id=tid, status="unknown", source=catalog.source)
    replacement = catalog.get(technique.revoked_by) if technique.revoked_by else None
    parent = catalog.get(technique.parent) if technique.parent else None
    return AttackLookupResult(
        technique_id=tid,
        status="revoked" if technique.revoked else "found",
        technique=technique,
        parent=parent,
        replacement=replacement,
        source=catalog.source,
    )


TOOLS = [attack_lookup]
