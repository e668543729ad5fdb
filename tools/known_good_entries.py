"""A known-good entry: what it names, the criteria it sets and the public sources it cites, and the match it
gives an alert.

An entry matches when every criterion it sets holds (AND); a criterion lists alternatives (OR):

- `process_path`, `parent_path`, `file_path`: path globs, matched whole and case-insensitively. `*` and `?`
  stay inside one folder name; a `**` segment stands for any number of folders.
- `process_signer`, `file_signer`: signer names; they match only a signature the EDR reported as valid.
- `user`: account globs (`*` is any text) over `name`, `DOMAIN\\name` and `name@domain`.
- `cmdline`, `parent_cmdline`: the command line's shape, a regular expression that must match the whole
  command line. Unbounded "any character" runs (`.*`, `.+`) are refused: an attacker could append anything.

An entry must be specific enough that an attacker cannot trivially satisfy it: its process or parent path
must name one file under a folder only administrators can write (Program Files, Windows outside its
user-writable folders, /usr, /opt, …). A remote-management tool may instead be identified by a valid signer.
Being a remote-management tool is not benign in itself (`kind: remote_admin_tool`): only the organisation's
context says whether a given tool is sanctioned.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from soctriage.service.config import ConfigError
from soctriage.service.domain import Frozen
from soctriage.tools.matching import (
    PathGlobs,
    check_cmdline_shape,
    driven_programs,
    file_name,
    path_is_specific,
)

KnownGoodKind = Literal["benign_software", "remote_admin_tool"]
CriterionName = Literal[
    "process_path",
    "parent_path",
    "file_path",
    "process_signer",
    "file_signer",
    "user",
    "cmdline",
    "parent_cmdline",
]


class KnownGoodError(ConfigError):
    """A known-good table is malformed; the message names the file, the line and the field."""


# --- the table -----------------------------------------------------------------------------------------


class Criteria(Frozen):
    process_path: PathGlobs = ()
    parent_path: PathGlobs = ()
    file_path: PathGlobs = ()
    process_signer: tuple[str, ...] = ()
    file_signer: tuple[str, ...] = ()
    user: tuple[str, ...] = ()
    cmdline: tuple[str, ...] = ()
    parent_cmdline: tuple[str, ...] = ()

    @field_validator("cmdline", "parent_cmdline")
    @classmethod
    def _shapes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_cmdline_shape(pattern) for pattern in value)

    @field_validator("process_signer", "file_signer", "user")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name.strip() for name in value):
            raise ValueError("names must not be empty")
        return value

    def specific(self, kind: KnownGoodKind, driven: frozenset[str] | None = None) -> bool:
        """Whether an attacker cannot trivially satisfy these criteria: a process or parent path naming one
        file under an admin-only folder, where a program driven by its input (a LOLBin, a web server)
        counts only with a command line, parent command line or file that narrows it."""
        driven = driven_programs() if driven is None else driven
        narrowing = bool(
            self.cmdline
            or self.parent_cmdline
            or (self.file_path and all(path_is_specific(glob) for glob in self.file_path))
        )
        for paths in (self.process_path, self.parent_path):
            specific = bool(paths) and all(path_is_specific(glob) for glob in paths)
            if specific and (narrowing or not any(file_name(glob) in driven for glob in paths)):
                return True
        return kind == "remote_admin_tool" and bool(self.process_signer)


class Excuses(Frozen):
    """The detections an entry's source says this software legitimately trips."""

    techniques: tuple[str, ...] = Field(default=(), description="ATT&CK technique ids")
    sigma_rules: tuple[str, ...] = Field(default=(), description="SigmaHQ rule ids")


SourceKind = Literal["sigma", "lolrmm", "local"]


class KnownGoodSource(Frozen):
    """Where an entry comes from: cite it in the ledger with its licence."""

    kind: SourceKind
    id: str = Field(description="sigma rule id, LOLRMM file name, or the local author's reference")
    title: str
    author: str | None = None
    license: str
    url: str | None = None
    detail: str | None = Field(default=None, description="e.g. the sigma filter selection's name")
    revision: str | None = Field(default=None, description="upstream commit the entry was built from")


class KnownGoodEntry(Frozen):
    id: str = Field(min_length=1, max_length=120)
    name: str = Field(min_length=1)
    kind: KnownGoodKind
    tool: str | None = Field(default=None, description="the remote-management tool, for remote_admin_tool")
    match: Criteria
    excuses: Excuses = Excuses()
    sources: tuple[KnownGoodSource, ...] = Field(min_length=1)

    @field_validator("match")
    @classmethod
    def _specific(cls, value: Criteria, info: ValidationInfo) -> Criteria:
        if value == Criteria():
            raise ValueError("sets no criteria")
        if not value.specific(info.data.get("kind", "benign_software")):
            raise ValueError(
                "not specific enough: give a process_path or parent_path naming one file under a folder only"
                " administrators can write (remote_admin_tool entries may use process_signer)"
            )
        return value


class MatchedCriterion(Frozen):
    criterion: CriterionName
    pattern: str
    value: str = Field(description="the alert's value that matched")


class KnownGoodMatch(Frozen):
    entry_id: str
    name: str
    kind: KnownGoodKind
    tool: str | None = None
    matched: tuple[MatchedCriterion, ...]
    excused_techniques: tuple[str, ...] = Field(
        default=(), description="the alert's techniques the entry's sources excuse"
    )
    excuses_rule: bool = Field(default=False, description="the alert's rule id is one the sources excuse")
    device_path: bool = Field(
        default=False,
        description="a matched path was a \\Device\\HarddiskVolumeN path read as drive C: (volume unconfirmed)",
    )
    sources: tuple[KnownGoodSource, ...]

    @property
    def covers_detection(self) -> bool:
        """The entry's sources excuse this very detection (technique or rule), not just the software."""
        return bool(self.excused_techniques) or self.excuses_rule
