"""The entities an alert names, as typed (kind, value, field) triples, and the alert's searchable text: the one
reading of an alert that scope, grouping, retrieval, the builtin analyst and the case assistant filter.

`alert_entities` walks the alert in one documented order: the device (hostname, IP, id), the user (name, id),
the process and then its parent (name, pid, path, sha256, command line), the file (name, path, sha256, sha1,
md5), the network (source IP, destination IP, domain, URL), and last the observables in the order the
normalizer collected them. Each entity keeps the exact field it came from (`observables` for an observable),
because what may be done with a value depends on who wrote it: a command line is written by whoever triggered
the alert (`free_text=False` leaves it out), while the structured fields are the EDR's own. A caller whose
output order matters (intel lookups stop after a few indicators) names its fields with `pick`, in its order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from soctriage.service.domain import Alert, ObservableType, ParentProcess

EntityKind = ObservableType | Literal["path", "cmdline", "pid", "device_id", "user_id"]

HASH_KINDS: frozenset[str] = frozenset({"sha256", "sha1", "md5"})
OBSERVABLES = "observables"


class Entity(NamedTuple):
    kind: EntityKind
    value: str | int
    field: str


def alert_processes(alert: Alert) -> list[ParentProcess]:
    """The alert's process and its parent, those the alert names."""
    if alert.process is None:
        return []
    return [p for p in (alert.process, alert.process.parent) if p is not None]


def url_host(url: str | None) -> str | None:
    """The host of a URL, or None when there is none or the URL is malformed (alert text is untrusted)."""
    if not url:
        return None
    try:
        return urlsplit(url if "://" in url else f"http://{url}").hostname
    except ValueError:
        return None


def alert_entities(alert: Alert, *, aliases: bool = False, free_text: bool = True) -> list[Entity]:
    """Every entity the alert names, in the module's order, without empty values (repeats are kept: the
    field a value came from is part of the entity). `aliases` adds the other spellings the same entity goes
    by, each under the field it was derived from: a hostname's short name, `DOMAIN\\user` and `user@domain`,
    a URL's host. `free_text=False` leaves out command lines, which the alert's subject writes."""
    return [
        Entity(kind, value, field)
        for kind, value, field in _walk(alert, aliases)
        if value not in (None, "") and (free_text or kind != "cmdline")
    ]


def pick(
    alert: Alert, fields: Sequence[str], kinds: Collection[str] | None = None, *, aliases: bool = False
) -> list[Entity]:
    """The entities of `fields` in the order the fields are named (within a field, the alert's order), of
    `kinds` only when given."""
    found = alert_entities(alert, aliases=aliases)
    return [e for f in fields for e in found if e.field == f and (kinds is None or e.kind in kinds)]


def _walk(alert: Alert, aliases: bool) -> Iterator[tuple[EntityKind, str | int | None, str]]:
    if device := alert.device:
        host = device.hostname
        yield ("hostname", host, "device.hostname")
        yield ("ip", device.ip, "device.ip")
        yield ("device_id", device.uid, "device.uid")
        if aliases and host and "." in host:
            yield ("hostname", host.split(".", 1)[0], "device.hostname")
    if user := alert.user:
        yield ("user", user.name, "user.name")
        yield ("user_id", user.uid, "user.uid")
        if aliases and user.name and user.domain:
            yield ("user", f"{user.domain}\\{user.name}", "user.name")
            yield ("user", f"{user.name}@{user.domain}", "user.name")
    for label, proc in (
        ("process", alert.process),
        ("process.parent", alert.process and alert.process.parent),
    ):
        if proc:
            yield ("process", proc.name, f"{label}.name")
            yield ("pid", proc.pid, f"{label}.pid")
            yield ("path", proc.path, f"{label}.path")
            yield ("sha256", proc.sha256, f"{label}.sha256")
            yield ("cmdline", proc.cmdline, f"{label}.cmdline")
    if file := alert.file:
        yield ("file", file.name, "file.name")
        yield ("path", file.path, "file.path")
        yield ("sha256", file.sha256, "file.sha256")
        yield ("sha1", file.sha1, "file.sha1")
        yield ("md5", file.md5, "file.md5")
    if net := alert.network:
        yield ("ip", net.src_ip, "network.src_ip")
        yield ("ip", net.dst_ip, "network.dst_ip")
        yield ("domain", net.domain, "network.domain")
        yield ("url", net.url, "network.url")
        if aliases:
            yield ("domain", url_host(net.url), "network.url")
    for obs in alert.observables:
        yield (obs.type, obs.value, OBSERVABLES)
        if aliases and obs.type == "url":
            yield ("domain", url_host(obs.value), OBSERVABLES)


def alert_text(alert: Alert) -> str:
    """The alert as retrieval sees it: what it is, where, by whom, how. Identical alerts give identical text.
    It keeps the text the alert's subject writes (title, command lines): similarity is about what the alert
    says, and nothing is decided on a match alone."""
    parts = [alert.title, alert.description or "", alert.rule.name if alert.rule and alert.rule.name else ""]
    for attack in alert.attacks:
        parts.append(" ".join(p for p in (attack.technique_id, attack.technique_name, attack.tactic) if p))
    if alert.process:
        parts += [alert.process.name or "", alert.process.cmdline or ""]
        if alert.process.parent:
            parts += [f"parent {alert.process.parent.name or ''}", alert.process.parent.cmdline or ""]
    if alert.file:
        parts.append(alert.file.name or alert.file.path or "")
    if alert.device and alert.device.hostname:
        parts.append(f"host {alert.device.hostname}")
    if alert.user and alert.user.name:
        parts.append(f"user {alert.user.name}")
    if alert.network:
        parts += [alert.network.domain or "", alert.network.url or "", alert.network.dst_ip or ""]
    return " | ".join(p.strip() for p in parts if p and p.strip())[:4000]
