"""Which alerts belong to one incident (policy `grouping`): the keys an alert is grouped by.

An EDR fleet fires hundreds of alerts from one intrusion or one bad update. Alerts of a tenant that share a
detection on one host or one account, or one indicator, within `window_s` of each other in alert time, are one
case. Only structured fields count: a title or command line is written by whoever caused the alert, and
grouping on it would let an attacker steer their alert into a case that is already closed.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Literal

from pydantic import Field
from soctriage.service.alert_entities import pick
from soctriage.service.domain import Alert, Frozen
from soctriage.service.store import Grouping, GroupKey

GroupingRule = Literal["detection_host", "detection_user", "indicator"]


class GroupingPolicy(Frozen):
    enabled: bool = True
    window_s: float = Field(default=3600, gt=0, description="how far apart in alert time one incident spans")
    rules: tuple[GroupingRule, ...] = ("detection_host", "detection_user", "indicator")

    def grouping(self) -> Grouping | None:
        """What the store groups by, or None when grouping is off (one case per alert)."""
        if not self.enabled or not self.rules:
            return None
        rules = self.rules
        return Grouping(keys=lambda alert: group_keys(alert, rules), window=timedelta(seconds=self.window_s))


def group_keys(alert: Alert, rules: tuple[GroupingRule, ...]) -> list[GroupKey]:
    keys: list[GroupKey] = []
    detection = ("detection", alert.detection)
    host = alert.device.hostname if alert.device else None
    if "detection_host" in rules and host:
        keys.append(GroupKey("detection_host", (detection, ("host", host.lower()))))
    account = alert.account
    if "detection_user" in rules and account:
        keys.append(GroupKey("detection_user", (detection, ("user", account))))
    if "indicator" in rules:
        keys.extend(GroupKey("indicator", (("indicator", value),)) for value in _indicators(alert))
    return keys


def _indicators(alert: Alert) -> list[str]:
    """What the incident is about, not what every alert has in common: the file the alert names and where it
    talked to. The process image is left out, since powershell.exe's hash would join every PowerShell alert."""
    fields = ("file.sha256", "network.domain", "network.url", "network.dst_ip")
    values = [
        str(e.value) for e in pick(alert, fields) if e.field != "network.dst_ip" or _public(str(e.value))
    ]
    return list(dict.fromkeys(v.lower() for v in values))


def _public(address: str | None) -> bool:
    """An internal address (a file server, a domain controller) is where every alert goes, not an incident."""
    try:
        return address is not None and ipaddress.ip_address(address).is_global
    except ValueError:
        return False
