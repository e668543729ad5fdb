"""The observables of an alert: hostnames, IPs, users, processes, files, hashes, domains and URLs, collected
in order without repeats while a record is mapped, each IP and hash validated the one way."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from soctriage.service.domain import Device, FileInfo, Network, Observable, ObservableType, Process, User


def real_hash(value: Any) -> str | None:
    """A hex digest, or None for the all-zero placeholders some vendors send when they have no hash."""
    if not value:
        return None
    text = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}", text) or not text.strip("0"):
        return None
    return text


def valid_ip(value: Any) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


_URL = re.compile(r"""\bhttps?://[^\s"'<>|^`]+""", re.IGNORECASE)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_HASH_TYPES: dict[int, ObservableType] = {64: "sha256", 40: "sha1", 32: "md5"}


class Observables:
    """An ordered, de-duplicated set of observables collected while mapping a record."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], None] = {}

    def add(self, kind: ObservableType, value: Any) -> None:
        if value is None:
            return
        text = str(value).strip()
        if text and text.lower() not in ("-", "unknown", "n/a", "null"):
            self._items[(kind, text)] = None

    def ip(self, value: Any) -> None:
        self.add("ip", valid_ip(value))

    def hash(self, value: Any) -> None:
        digest = real_hash(value)
        if digest:
            self.add(_HASH_TYPES[len(digest)], digest)

    def url(self, value: Any) -> None:
        if not value:
            return
        url = str(value).strip().rstrip(".,;)]}'\"")
        self.add("url", url)
        host = _url_host(url)
        if host and valid_ip(host):
            self.add("ip", valid_ip(host))
        elif host:
            self.add("domain", host)

    def typed(self, kind: ObservableType, value: Any) -> None:
        """Add `value` as `kind`, validating IPs, hashes and URLs the same way as everywhere else."""
        if kind == "ip":
            self.ip(value)
        elif kind in ("sha256", "sha1", "md5"):
            self.hash(value)
        elif kind == "url":
            self.url(value)
        else:
            self.add(kind, value)

    def from_text(self, text: Any) -> None:
        """URLs and IPv4 addresses written inside free text such as a command line."""
        if not text:
            return
        value = str(text)
        for match in _URL.finditer(value):
            self.url(match.group())
        for match in _IPV4.finditer(value):
            self.ip(match.group())

    def result(self) -> tuple[Observable, ...]:
        return tuple(Observable(type=kind, value=value) for kind, value in self._items)  # type: ignore[arg-type]


def _url_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def entity_observables(
    seen: Observables,
    *,
    device: Device | None = None,
    user: User | None = None,
    process: Process | None = None,
    file: FileInfo | None = None,
    network: Network | None = None,
) -> None:
    """Every hostname, IP, user, process, file, hash, domain and URL held by the given entities."""
    if device:
        seen.add("hostname", device.hostname)
        seen.ip(device.ip)
    if user:
        seen.add("user", user.name)
    for proc in (process, process.parent if process else None):
        if proc:
            seen.add("process", proc.name)
            seen.hash(proc.sha256)
            seen.from_text(proc.cmdline)
    if file:
        seen.add("file", file.path or file.name)
        for digest in (file.sha256, file.sha1, file.md5):
            seen.hash(digest)
    if network:
        seen.ip(network.src_ip)
        seen.ip(network.dst_ip)
        seen.add("domain", network.domain)
        seen.url(network.url)
