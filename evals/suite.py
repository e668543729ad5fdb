"""Eval suites as data: a folder with `suite.yaml` (scorers, gates, where the cases come from) and cases.

A case is `{id?, note?, reason?, alert, expected: {disposition, severity?, techniques?, required_actions?,
forbidden_actions?, injected?}}`; `alert` is a raw vendor record in any format ingest auto-detects. A suite
may name its organisation's data files (`environment`: context, inventory, intel, known_good), which replace
the shipped defaults while it runs.
Cases come from a JSONL file beside the spec, or from a builder over third-party data shipped in the suite's
folder under its own licence (see the NOTICE there). Every problem is reported with the file, line and field.
Those are triage suites; `kind: chat` in suite.yaml makes a chat suite, whose cases are evals/chat_suite.py's.
evals/kinds.py loads and runs a suite of either kind.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from soctriage.service.config import Settings
from soctriage.service.domain import Disposition, SeverityId
from soctriage.service.jsonl import read_jsonl

SUITES_ROOT = Path(str(resources.files("soctriage.evals").joinpath("suites")))
SPEC_FILE = "suite.yaml"


class SuiteError(ValueError):
    """A suite that cannot be read: the message names the file, line and field."""


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionSpec(Strict):
    """An action on a target: `tool` and `target` are case-insensitive globs (`*` = any)."""

    tool: str = "*"
    target: str = "*"


class Expected(Strict):
    disposition: Disposition | list[Disposition] = Field(
        description="the right disposition, or a list of acceptable ones (the first is the canonical label)"
    )
    severity: str | int | None = Field(default=None, description="OCSF severity label or id")
    techniques: list[str] | None = None
    required_actions: list[ActionSpec] = Field(default_factory=list)
    forbidden_actions: list[ActionSpec] = Field(default_factory=list)
    injected: bool = Field(default=False, description="the alert carries a prompt injection (red team)")

    @field_validator("disposition")
    @classmethod
    def _non_empty(cls, value: Disposition | list[Disposition]) -> Disposition | list[Disposition]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one acceptable disposition")
        return value

    @field_validator("severity")
    @classmethod
    def _known_severity(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            severity_id(value)
        return value

    @property
    def acceptable(self) -> tuple[Disposition, ...]:
        return tuple(self.disposition) if isinstance(self.disposition, list) else (self.disposition,)

    @property
    def label(self) -> Disposition:
        return self.acceptable[0]


def severity_id(value: str | int) -> int:
    """`high`, `High`, 4 or "4" -> 4; raises ValueError naming the accepted labels."""
    if isinstance(value, int) or str(value).isdigit():
        return int(SeverityId(int(value)))
    try:
        return int(SeverityId[str(value).strip().upper()])
    except KeyError:
        names = ", ".join(s.name.lower() for s in SeverityId)
        raise ValueError(f"unknown severity {value!r}; expected one of {names} or 0-6") from None


class SuiteCase(Strict):
    id: str
    alert: dict[str, Any] | list[Any] | str = Field(description="the raw vendor record")
    expected: Expected
    note: str | None = None
    reason: str | None = Field(default=None, description="why the expected disposition is right")

    def alert_bytes(self) -> bytes:
        return (self.alert if isinstance(self.alert, str) else json.dumps(self.alert)).encode()


class Gate(Strict):
    """Pass when the metric is within [min, max]. `eval compare` also fails when the metric got worse than the
    baseline by more than `tolerance` (unset: only crossing the bounds counts)."""

    min: float | None = None
    max: float | None = None
    tolerance: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounded(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs min or max")
        return self

    def passes(self, value: float | None) -> bool:
        if value is None:
            return False  # a gate that measured nothing proved nothing: it fails rather than pass unseen
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    @property
    def direction(self) -> Literal["lower", "higher"]:
        """Which way is better."""
        return "lower" if self.max is not None else "higher"


class Source(Strict):
    builder: str = Field(description="name of a builder in evals/builders.py")
    data: str = Field(description="the builder's input: a file or folder, relative to suite.yaml's folder")
    strip_vendor_verdicts: bool = Field(
        default=False,
        description="remove the fields that carry the vendor's own verdict (classification, determination,"
        " analyst verdict, analyst tags), to score the suite without the labels its records carry",
    )


class SuiteEnvironment(Strict):
    """The organisation a suite's alerts come from: data files beside suite.yaml that replace the shipped
    defaults while the suite runs (an unset one keeps the running configuration's)."""

    context: str | None = Field(default=None, description="organisation context YAML (Settings context_path)")
    inventory: str | None = Field(default=None, description="asset/identity inventory YAML")
    intel: list[str] = Field(default_factory=list, description="threat-intel files added to the bundled one")
    known_good: list[str] = Field(
        default_factory=list, description="known-good tables added to the bundled one"
    )

    def settings_update(self, folder: Path, spec_path: Path) -> dict[str, Any]:
        """Settings fields with the files resolved against `folder`; a missing file is a SuiteError."""

        def resolve(field: str, name: str) -> Path:
            path = folder / name
            if not path.is_file():
                raise SuiteError(f"{spec_path}: field environment.{field}: {path} is missing")
            return path

        update: dict[str, Any] = {}
        if self.context:
            update["context_path"] = resolve("context", self.context)
        if self.inventory:
            update["inventory_path"] = resolve("inventory", self.inventory)
        if self.intel:
            update["intel_paths"] = [resolve("intel", name) for name in self.intel]
        if self.known_good:
            update["known_good_paths"] = [resolve("known_good", name) for name in self.known_good]
        return update


class SuiteSpec(Strict):
    name: str
    kind: Literal["triage", "chat"] = Field(
        default="triage",
        description="triage: alerts scored on the graph's decisions; chat: questions to the case assistant"
        " scored on the facts of their answers (evals/kinds.py)",
    )
    description: str = ""
    cases: str | None = Field(default=None, description="JSONL file beside suite.yaml")
    source: Source | None = None
    scorers: list[str] | None = Field(default=None, description="scorer names; unset means all")
    gates: dict[str, Gate] = Field(default_factory=dict)
    attribution: str | None = Field(default=None, description="licence attribution shown in reports")
    environment: SuiteEnvironment | None = Field(
        default=None, description="the organisation the alerts come from (context, inventory, intel)"
    )
    baseline: bool = Field(
        default=True,
        description="a column of `eval baseline`'s table, which CI checks against the README; false for a suite"
        " whose score moves between runs of the same code",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SuiteSpec:
        if (self.cases is None) == (self.source is None):
            raise ValueError("give exactly one of `cases` (a JSONL file) or `source` (a builder)")
        return self


class LoadedSuite(BaseModel):
    """What every kind of suite has once loaded; each kind adds its cases."""

    spec: SuiteSpec
    skipped: list[str] = Field(default_factory=list, description="source records left out, and why")
    origin: str = Field(description="where the suite was loaded from")
    settings_update: dict[str, Any] = Field(
        default_factory=dict, description="Settings fields the suite's environment sets (resolved paths)"
    )

    def settings(self, base: Settings) -> Settings:
        """`base` with the suite's environment (its organisation's context, inventory and intel) applied."""
        return base.model_copy(update=self.settings_update) if self.settings_update else base


class Suite(LoadedSuite):
    """A triage suite: alerts and the decisions expected of them."""

    cases: list[SuiteCase]


def suite_dir(name_or_path: str) -> Path:
    """A shipped suite's folder by name, or a folder / suite.yaml path."""
    path = Path(name_or_path)
    if path.is_file():
        return path.parent
    if path.is_dir():
        return path
    shipped = SUITES_ROOT / name_or_path
    if (shipped / SPEC_FILE).is_file():
        return shipped
    names = ", ".join(shipped_suites()) or "none"
    raise SuiteError(f"{name_or_path}: no such suite (shipped: {names}) and no such folder")


def shipped_suites() -> list[str]:
    return sorted(p.parent.name for p in SUITES_ROOT.glob(f"*/{SPEC_FILE}"))


def load_spec(folder: Path) -> SuiteSpec:
    path = folder / SPEC_FILE
    if not path.is_file():
        raise SuiteError(f"{path}: missing (a suite folder needs {SPEC_FILE})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise SuiteError(f"{path}: {_first_error(exc)}") from exc


def environment_update(folder: Path, spec: SuiteSpec) -> dict[str, Any]:
    """The Settings fields the suite's environment sets, its files resolved against `folder`."""
    return spec.environment.settings_update(folder, folder / SPEC_FILE) if spec.environment else {}


def load_suite(name_or_path: str) -> Suite:
    """Load a triage suite; raises SuiteError for bad or missing data (a suite that cannot run never passes).
    A suite of any kind is loaded by `load_any_suite` (evals/kinds.py)."""
    from soctriage.evals.builders import BUILDERS
    from soctriage.evals.scorers import SCORERS

    folder = suite_dir(name_or_path)
    spec = load_spec(folder)
    spec_path = folder / SPEC_FILE
    if spec.kind != "triage":
        raise SuiteError(f"{spec_path}: field kind: a {spec.kind} suite, not a triage suite")
    unknown = [s for s in spec.scorers or () if s not in SCORERS]
    if unknown:
        raise SuiteError(f"{spec_path}: field scorers: unknown {unknown}; known: {', '.join(SCORERS)}")
    environment = environment_update(folder, spec)
    if spec.cases is not None:
        return Suite(
            spec=spec, cases=read_cases(folder / spec.cases), origin=str(folder), settings_update=environment
        )
    assert spec.source is not None
    builder, source = source_of(folder, spec.source, BUILDERS)
    cases, skipped = builder(source)
    if spec.source.strip_vendor_verdicts:
        cases = [_unlabelled(case) for case in cases]
    return Suite(
        spec=spec, cases=cases, skipped=skipped, origin=f"{folder} <- {source}", settings_update=environment
    )


BuilderT = TypeVar("BuilderT")


def source_of(folder: Path, source: Source, builders: dict[str, BuilderT]) -> tuple[BuilderT, Path]:
    """The builder `source` names among `builders` (those of the suite's kind) and the data it reads."""
    spec_path = folder / SPEC_FILE
    builder = builders.get(source.builder)
    if builder is None:
        known = ", ".join(builders)
        raise SuiteError(f"{spec_path}: field source.builder: unknown {source.builder!r}; known: {known}")
    data = folder / source.data
    if not data.exists():
        raise SuiteError(f"{spec_path}: field source.data: {data} is missing")
    return builder, data


def _unlabelled(case: SuiteCase) -> SuiteCase:
    from soctriage.service.ingest.verdicts import strip_verdict_fields

    alert = json.dumps(strip_verdict_fields(json.loads(case.alert_bytes())), ensure_ascii=False)
    return case.model_copy(update={"alert": alert})


CaseT = TypeVar("CaseT", bound=BaseModel)


def read_cases(path: Path, model: type[CaseT] = SuiteCase) -> list[CaseT]:  # type: ignore[assignment]
    """Cases (of `model`, a triage case by default) from JSONL; a line without `id` gets `<file stem>-<line>`.
    Duplicate ids are an error."""
    if not path.is_file():
        raise SuiteError(f"{path}: missing")
    cases: list[CaseT] = []
    seen: dict[str, int] = {}
    for number, data in read_jsonl(path, "cases", SuiteError):
        if not isinstance(data, dict):
            raise SuiteError(f"{path}:{number}: a case must be a JSON object")
        data.setdefault("id", f"{path.stem}-{number}")
        try:
            case = model.model_validate(data)
        except ValidationError as exc:
            raise SuiteError(f"{path}:{number}: {_first_error(exc)}") from exc
        case_id = case.id  # type: ignore[attr-defined]
        if case_id in seen:
            raise SuiteError(f"{path}:{number}: field id: {case_id!r} already used on line {seen[case_id]}")
        seen[case_id] = number
        cases.append(case)
    return cases


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "<record>"
    return f"field {where}: {error['msg']}"
