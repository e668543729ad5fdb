"""LOLBin lookup: is this binary one attackers abuse, how, and which ATT&CK techniques that maps to.

Data: the table written for this project in tools/data/lolbins_builtin.yaml (the default), or a LOLBAS JSONL
export (Settings `lolbas_path`; LOLBAS is GPL-3.0, so it is never bundled).
"""

from __future__ import annotations

import functools
from pathlib import Path, PureWindowsPath

import yaml
from pydantic import Field
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.service.jsonl import read_jsonl
from soctriage.tools.datafiles import bundled
from soctriage.tools.tool_spec import ToolContext, ToolOutput, tool

BUILTIN_LOLBINS = bundled("lolbins_builtin.yaml")


class LolbasDataError(ConfigError):
    """The LOLBAS file is malformed; the message names the file, the line and the field."""


class LolBin(Frozen):
    name: str
    categories: tuple[str, ...] = ()
    attack_ids: tuple[str, ...] = ()
    description: str | None = None


def binary_name(value: str) -> str:
    """`C:\\Windows\\System32\\CertUtil.exe` -> `certutil.exe` (alert paths use either slash)."""
    return PureWindowsPath(value.strip().strip('"')).name.lower()


class LolbinCatalog:
    def __init__(self, entries: list[LolBin], source: str) -> None:
        self._by_name = {e.name.lower(): e for e in entries}
        self.source = source

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> LolBin | None:
        key = binary_name(name)
        return self._by_name.get(key) or self._by_name.get(f"{key}.exe")

    def entries(self) -> list[LolBin]:
        return list(self._by_name.values())

    @classmethod
    def load(cls, path: Path | None) -> LolbinCatalog:
        return cls.builtin() if path is None else cls.from_lolbas_jsonl(path)

    @classmethod
    def builtin(cls) -> LolbinCatalog:
        return cls(list(_builtin_entries()), source="builtin")

    @classmethod
    def from_lolbas_jsonl(cls, path: Path) -> LolbinCatalog:
        """LOLBAS YAML entries converted to JSON, one a line: `{Name, Description, Commands: [{Category,
        MitreID}]}`."""
        entries = []
        for lineno, row in read_jsonl(path, "LOLBAS data", LolbasDataError):
            if not isinstance(row, dict) or not isinstance(row.get("Name"), str):
                raise LolbasDataError(f"{path}:{lineno}: field 'Name': missing or not a string")
            commands = row.get("Commands") or []
            if not isinstance(commands, list):
                raise LolbasDataError(f"{path}:{lineno}: field 'Commands': expected a list")
            entries.append(
                LolBin(
                    name=row["Name"],
                    categories=tuple(
                        dict.fromkeys(str(c["Category"]) for c in commands if c.get("Category"))
                    ),
                    attack_ids=tuple(dict.fromkeys(str(c["MitreID"]) for c in commands if c.get("MitreID"))),
                    description=row.get("Description"),
                )
            )
        return cls(entries, source=str(path))


@functools.cache
def _builtin_entries() -> tuple[LolBin, ...]:
    # Parsed once per process: the connectors and the known-good table's validation both read it.
    table = yaml.safe_load(BUILTIN_LOLBINS.read_text(encoding="utf-8"))["lolbins"]
    return tuple(
        LolBin(
            name=name,
            categories=tuple(row["categories"]),
            attack_ids=tuple(row["attack"]),
            description=row.get("note"),
        )
        for name, row in table.items()
    )


class LolbinLookupInput(Frozen):
    name: str = Field(
        min_length=1, max_length=1024, description="binary name or full path, e.g. certutil.exe"
    )


class LolbinLookupResult(ToolOutput):
    name: str
    is_lolbin: bool
    lolbin: LolBin | None = None
    source: str

    def summary(self) -> str:
        if self.lolbin is None:
            return f"{self.name}: not a known LOLBin"
        abuse = ", ".join(self.lolbin.categories) or "no abuse category"
        attack = f"; ATT&CK {', '.join(self.lolbin.attack_ids)}" if self.lolbin.attack_ids else ""
        return f"{self.name}: a LOLBin ({abuse}){attack}"


@tool(tier="read", timeout_s=5.0)
async def lolbin_lookup(ctx: ToolContext, args: LolbinLookupInput) -> LolbinLookupResult:
    """Check whether a binary is a known living-off-the-land binary (LOLBin) and return its abuse categories
    (Execute, Download, AWL Bypass, ...) and the ATT&CK techniques that abuse maps to."""
    catalog = ctx.connectors.lolbins
    entry = catalog.get(args.name)
    return LolbinLookupResult(
        name=binary_name(args.name), is_lolbin=entry is not None, lolbin=entry, source=catalog.source
    )


TOOLS = [lolbin_lookup]
