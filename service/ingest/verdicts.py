"""The vendor's own verdict on an alert, read from the structured fields each EDR fills itself.

These are the only places a benign or test verdict may come from the record: a classification or
determination an analyst or the vendor's automated investigation set, or a detection the vendor documents as
its own test. Text the attacker controls (titles, descriptions, command lines, file and folder names) is never
read here. A test detection is recognised by the vendor's identifier *and* the exact shape of the test command,
so a real attack that merely contains the test string is not one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from soctriage.service.domain import AlertFormat, Process, VendorVerdict, VendorVerdictKind


class RecordFields(Protocol):
    """What this module needs of `soctriage.service.ingest.fields.Fields` (common.py imports both)."""

    def lookup(self, path: str) -> Any: ...

    def items(self, path: str) -> list[Any]: ...

    def mark(self, *paths: str) -> None: ...


# Values are compared lower-cased with separators removed ("TruePositive", "true_positive" → "truepositive").
_DEFENDER_DETERMINATION: dict[str, VendorVerdictKind] = {
    "securitytesting": "test",
    "lineofbusinessapplication": "benign",
    "confirmedactivity": "benign",
    "confirmeduseractivity": "benign",
    "notmalicious": "false_positive",
    "clean": "false_positive",
    "malware": "true_positive",
    "phishing": "true_positive",
    "compromisedaccount": "true_positive",
    "compromisedaccounts": "true_positive",
    "malicioususeractivity": "true_positive",
    "multistagedattack": "true_positive",
    "unwantedsoftware": "true_positive",
}
_DEFENDER_CLASSIFICATION: dict[str, VendorVerdictKind] = {
    "truepositive": "true_positive",
    "falsepositive": "false_positive",
    "informationalexpectedactivity": "benign",
    "benignpositive": "benign",
}
_ANALYST_VERDICT: dict[str, VendorVerdictKind] = {
    "truepositive": "true_positive",
    "falsepositive": "false_positive",
}

# Per format, the fields to read in order (the more specific determination first) and what their values mean.
VERDICT_FIELDS: dict[AlertFormat, tuple[tuple[str, dict[str, VendorVerdictKind]], ...]] = {
    "defender": (
        ("determination", _DEFENDER_DETERMINATION),
        ("classification", _DEFENDER_CLASSIFICATION),
        # Defender's automated investigation and response concluded the evidence is benign.
        ("investigationState", {"benign": "benign"}),
    ),
    "sentinelone": (
        ("threatInfo.analystVerdict", _ANALYST_VERDICT),
        ("alertInfo.analystVerdict", _ANALYST_VERDICT),
    ),
    # Falcon alert tags are set by analysts in the console, never by the sensor's subject.
    "crowdstrike": (("tags", {**_ANALYST_VERDICT, "benign": "benign"}),),
}


@dataclass(frozen=True)
class TestDetection:
    """A detection the vendor ships to prove the sensor works: its id field and value, and for a process
    detection the exact command line the vendor's test runs."""

    format: AlertFormat
    fields: tuple[str, ...]
    value: str
    cmdline: re.Pattern[str] | None = None


TEST_DETECTIONS = (
    # Falcon's sample detection: `choice /m crowdstrike_sample_detection` raises pattern 10197.
    TestDetection(
        "crowdstrike",
        ("event.PatternId", "pattern_id"),
        "10197",
        re.compile(r"(?:\S*\\)?choice(?:\.exe)?\s+/m\s+crowdstrike_sample_detection\s*", re.I),
    ),
    # The EICAR anti-malware test file, as Defender Antivirus names it (its own event, forwarded by Wazuh).
    TestDetection("wazuh", ("data.win.eventdata.threat Name",), "Virus:DOS/EICAR_Test_File"),
    TestDetection("defender", ("threatName",), "Virus:DOS/EICAR_Test_File"),
)


def _key(value: object) -> str:
    return re.sub(r"[\s_\-]", "", str(value)).lower()


def vendor_verdict(fmt: AlertFormat, fields: RecordFields, process: Process | None) -> VendorVerdict | None:
    """The vendor's verdict for a record of format `fmt`, or None when it carries none. The field it came
    from is marked mapped (it lives on in `Alert.vendor_verdict`); other fields are left as they were."""
    for test in TEST_DETECTIONS:
        if test.format != fmt:
            continue
        for path in test.fields:
            value = fields.lookup(path)
            if not isinstance(value, str | int) or str(value).strip() != test.value:
                continue
            if test.cmdline is not None and not (
                process and process.cmdline and test.cmdline.fullmatch(process.cmdline.strip())
            ):
                continue
            return VendorVerdict(kind="test", field=path, value=test.value)
    for path, meanings in VERDICT_FIELDS.get(fmt, ()):
        for value in fields.items(path):
            kind = meanings.get(_key(value)) if isinstance(value, str | int) else None
            if kind is not None:
                fields.mark(path)
                return VendorVerdict(kind=kind, field=path, value=str(value))
    return None


def strip_verdict_fields(record: Any) -> Any:
    """`record` without the fields `VERDICT_FIELDS` reads, at any depth (an API page holds many alerts): the
    same alert as its vendor sends it before anyone has labelled it, for measuring triage without labels."""
    paths = {tuple(path.split(".")) for fields in VERDICT_FIELDS.values() for path, _ in fields}
    if isinstance(record, list):
        return [strip_verdict_fields(item) for item in record]
    if not isinstance(record, dict):
        return record
    out = {key: strip_verdict_fields(value) for key, value in record.items()}
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return out
