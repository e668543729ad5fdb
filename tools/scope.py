"""What an action may target, and why: the provenance of every entity a case knows (DESIGN §3, §5).

An action may target an entity of the alert's structured fields (what the EDR itself reported: device, user,
process, file, network), or an entity a tool discovered *about* one of those (the IP of the alert's host from
the inventory, the canonical name of its user). A value a model merely passed as a tool argument never
qualifies: looking up `DC01` does not put `DC01` in scope unless the alert named it. Values the alert names
only in free text (a URL inside a command line) are written by whoever triggered the alert, so they are in
scope only when a tool independently confirmed them as a threat (threat intel: malicious or suspicious), and
acting on them still needs a human.

Values are compared lower-cased and stripped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from soctriage.service.alert_entities import OBSERVABLES, alert_entities, alert_processes
from soctriage.service.domain import Alert
from soctriage.tools.commandline import decode_powershell, indicators_in


@dataclass(frozen=True)
class Origin:
    """Where an in-scope entity came from: an alert field, or a tool result (ledger seq) about one."""

    source: str  # "alert", or the name of the tool that discovered it
    detail: str
    seq: int | None = None
    text_only: bool = False

    def describe(self) -> str:
        if self.source == "alert":
            return f"alert field {self.detail}"
        at = f" (ledger seq {self.seq})" if self.seq is not None else ""
        return f"{self.source}{at}: {self.detail}"


@dataclass(frozen=True)
class ToolFacts:
    """What scope needs of one successful tool result: the entity values the call was about (its subject
    arguments), what it reported finding, what it confirmed as a threat, and its ledger seq."""

    tool: str
    subjects: tuple[str, ...]
    found: tuple[str, ...] = ()
    confirmed: tuple[str, ...] = ()
    seq: int | None = None


class Scope:
    """The entities a case may act on, each with its `Origin`."""

    def __init__(self, origins: Mapping[str, Origin], text_only: frozenset[str] = frozenset()) -> None:
        self._origins = dict(origins)
        self._text_only = text_only

    @classmethod
    def of_alert(cls, alert: Alert) -> Scope:
        # In scope: what the EDR reported in a structured field, under each of its spellings (a short
        # hostname, `DOMAIN\\user`, a URL's host). Observables and command lines are the alert's free text.
        origins: dict[str, Origin] = {}
        named: set[str] = set()
        for entity in alert_entities(alert, aliases=True, free_text=False):
            if entity.field == OBSERVABLES:
                named.add(_norm(entity.value))
            else:
                origins.setdefault(_norm(entity.value), Origin("alert", entity.field))
        # What an encoded command line spells is free text too, only hidden.
        for proc in alert_processes(alert):
            decoded = decode_powershell(proc.cmdline) if proc.cmdline else None
            named.update(_norm(value) for value in indicators_in(decoded or ""))
        return cls(origins, frozenset(named - origins.keys()))

    def origin(self, value: str | int) -> Origin | None:
        return self._origins.get(_norm(value))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str | int) and _norm(value) in self._origins

    def widened(self, facts: ToolFacts) -> Scope:
        """The scope after a tool result. What a tool found counts only when every entity the call was about
        is already in scope; a free-text value of the alert counts once a tool confirmed it as a threat."""
        origins = dict(self._origins)
        if all(subject in self for subject in facts.subjects):
            about = ", ".join(facts.subjects) or "the case's alert"
            for value in facts.found:
                origins.setdefault(_norm(value), Origin(facts.tool, f"found about {about}", facts.seq))
        for value in facts.confirmed:
            key = _norm(value)
            if key in self._text_only and key not in origins:
                detail = "confirmed a threat named only in the alert's free text"
                origins[key] = Origin(facts.tool, detail, facts.seq, text_only=True)
        return Scope(origins, self._text_only)

    def after(self, results: Iterable[ToolFacts]) -> Scope:
        scope = self
        for facts in results:
            scope = scope.widened(facts)
        return scope


def _norm(value: str | int) -> str:
    return str(value).strip().lower()
