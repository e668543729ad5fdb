"""The entities a case knows about: an action may only target one of these (DESIGN §3, §5).

Values are compared lower-cased. The alert contributes every host, user, process, file, network indicator and
observable it names; enrichment results add theirs through `ToolOutcome.entities`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from soctriage.service.domain import Alert


def alert_entities(alert: Alert) -> frozenset[str]:
    """Everything the alert names: its structured fields and every observable, free-text ones included."""
    values: list[str | int | None] = list(_field_values(alert))
    for obs in alert.observables:
        values.append(obs.value)
        if obs.type == "url":
            values.append(url_host(obs.value))
    return _lowered(values)


def structured_entities(alert: Alert) -> frozenset[str]:
    """What the EDR itself put in structured fields (device, user, process, file, network).

    Observables scraped from free text (a URL in a command line, say) are left out: an attacker writes that
    text, so acting on what it names needs a human (see `Guard.decide`).
    """
    return _lowered(_field_values(alert))


def _field_values(alert: Alert) -> list[str | int | None]:
    values: list[str | int | None] = []
    if alert.device:
        values += [alert.device.hostname, alert.device.ip, alert.device.uid]
        if alert.device.hostname and "." in alert.device.hostname:
            values.append(alert.device.hostname.split(".", 1)[0])
    if alert.user:
        values += [alert.user.name, alert.user.uid]
        if alert.user.name and alert.user.domain:
            values += [f"{alert.user.domain}\\{alert.user.name}", f"{alert.user.name}@{alert.user.domain}"]
    for proc in (alert.process, alert.process.parent if alert.process else None):
        if proc:
            values += [proc.name, proc.pid, proc.path, proc.sha256]
    if alert.file:
        values += [alert.file.name, alert.file.path, alert.file.sha256, alert.file.sha1, alert.file.md5]
    if alert.network:
        net = alert.network
        values += [net.src_ip, net.dst_ip, net.domain, net.url, url_host(net.url)]
    return values


def _lowered(values: list[str | int | None]) -> frozenset[str]:
    return frozenset(str(v).strip().lower() for v in values if v not in (None, ""))


def url_host(url: str | None) -> str | None:
    """The host of a URL, or None when there is none or the URL is malformed (alert text is untrusted)."""
    if not url:
        return None
    try:
        return urlsplit(url if "://" in url else f"http://{url}").hostname
    except ValueError:
        return None
