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
from urllib.parse import urlsplit

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
        origins: dict[str, Origin] = {}
        for where, value in alert_fields(alert):
            origins.setdefault(_norm(value), Origin("alert", where))
        named: set[str] = set()
        for obs in alert.observables:
            named.add(_norm(obs.value))
            if obs.type == "url" and (host := url_host(obs.value)):
                named.add(_norm(host))
        # What an encoded command line spells is free text too, only hidden.
        for proc in (alert.process, alert.process and alert.process.parent):
            decoded = decode_powershell(proc.cmdline) if proc and proc.cmdline else None
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


def alert_fields(alert: Alert) -> list[tuple[str, str | int]]:
    """(field, value) for every entity the EDR reported in a structured field of the alert."""
    out: list[tuple[str, str | int | None]] = []
    if alert.device:
        host = alert.device.hostname
        out += [("device.hostname", host), ("device.ip", alert.device.ip), ("device.uid", alert.device.uid)]
        if host and "." in host:
            out.append(("device.hostname", host.split(".", 1)[0]))
    if alert.user:
        user = alert.user
        out += [("user.name", user.name), ("user.uid", user.uid)]
        if user.name and user.domain:
            out += [("user.name", f"{user.domain}\\{user.name}"), ("user.name", f"{user.name}@{user.domain}")]
    for label, proc in (
        ("process", alert.process),
        ("process.parent", alert.process and alert.process.parent),
    ):
        if proc:
            out += [
                (f"{label}.name", proc.name),
                (f"{label}.pid", proc.pid),
                (f"{label}.path", proc.path),
                (f"{label}.sha256", proc.sha256),
            ]
    if alert.file:
        f = alert.file
        out += [("file.name", f.name), ("file.path", f.path), ("file.sha256", f.sha256)]
        out += [("file.sha1", f.sha1), ("file.md5", f.md5)]
    if alert.network:
        net = alert.network
        out += [
            ("network.src_ip", net.src_ip),
            ("network.dst_ip", net.dst_ip),
            ("network.domain", net.domain),
        ]
        out += [("network.url", net.url), ("network.url", url_host(net.url))]
    return [(where, value) for where, value in out if value not in (None, "")]


def _norm(value: str | int) -> str:
    return str(value).strip().lower()


def url_host(url: str | None) -> str | None:
    """The host of a URL, or None when there is none or the URL is malformed (alert text is untrusted)."""
    if not url:
        return None
    try:
        return urlsplit(url if "://" in url else f"http://{url}").hostname
    except ValueError:
        return None
