"""Code-signing facts each normalizer carries: the signer of the process, its parent and the file, and whether
the EDR said the signature validated (records written for these tests, in each vendor's shape)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from soctriage.service.domain import Alert
from soctriage.service.ingest import normalize_bytes

AT = "2025-03-04T10:00:00Z"


def one(record: dict[str, Any]) -> Alert:
    (alert,) = list(normalize_bytes(json.dumps(record).encode(), "test"))
    assert isinstance(alert, Alert), alert
    return alert


def elastic(signature: dict[str, Any], parent_signature: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "@timestamp": AT,
        "kibana.alert.uuid": "sig-1",
        "kibana.alert.rule.name": "Remote access tool",
        "host": {"name": "WS-1"},
        "process": {
            "executable": "C:\\Users\\bob\\Downloads\\AnyDesk.exe",
            "code_signature": signature,
            "parent": {"executable": "C:\\Windows\\explorer.exe", "code_signature": parent_signature or {}},
        },
        "file": {"path": "C:\\Users\\bob\\Downloads\\x.exe", "code_signature": {"exists": False}},
    }


@pytest.mark.parametrize(
    ("signature", "signer", "valid"),
    [
        (
            {"exists": True, "subject_name": "AnyDesk Software GmbH", "trusted": True},
            "AnyDesk Software GmbH",
            True,
        ),
        (
            {"exists": True, "subject_name": "AnyDesk Software GmbH", "trusted": False},
            "AnyDesk Software GmbH",
            False,
        ),
        # `valid` alone means the digest matches, which a self-made certificate also passes.
        ({"subject_name": "AnyDesk Software GmbH", "valid": True}, "AnyDesk Software GmbH", None),
        ({"subject_name": "AnyDesk Software GmbH", "status": "trusted"}, "AnyDesk Software GmbH", True),
        ({"subject_name": "AnyDesk Software GmbH", "status": "errorExpired"}, "AnyDesk Software GmbH", False),
        ({"exists": False}, None, False),
    ],
)
def test_elastic_code_signature(signature: dict[str, Any], signer: str | None, valid: bool | None) -> None:
    alert = one(elastic(signature, {"subject_name": "Microsoft Windows", "trusted": True}))
    assert alert.process is not None and alert.process.parent is not None and alert.file is not None
    assert (alert.process.signer, alert.process.signature_valid) == (signer, valid)
    assert (alert.process.parent.signer, alert.process.parent.signature_valid) == ("Microsoft Windows", True)
    assert (alert.file.signer, alert.file.signature_valid) == (None, False)
    assert "code_signature" not in json.dumps(alert.unmapped)


def test_elastic_apple_developer_id_is_read_as_the_company() -> None:
    signature = {"subject_name": "Developer ID Application: JAMF Software (483DWKW443)", "trusted": True}
    alert = one(elastic(signature))
    assert alert.process is not None and alert.process.signer == "JAMF Software"


def test_defender_graph_signers_carry_no_verdict() -> None:
    image = {
        "fileName": "AgentExecutor.exe",
        "filePath": "C:\\Program Files (x86)\\IME",
        "signer": "Microsoft Corporation",
    }
    alert = one(
        {
            "@odata.type": "#microsoft.graph.security.alert",
            "id": "da-sig-1",
            "title": "PowerShell script",
            "severity": "medium",
            "createdDateTime": AT,
            "evidence": [
                {
                    "@odata.type": "#microsoft.graph.security.processEvidence",
                    "processId": 10,
                    "imageFile": {
                        "fileName": "powershell.exe",
                        "filePath": "C:\\Windows",
                        "signer": "Microsoft Windows",
                    },
                    "parentProcessImageFile": image,
                },
                {
                    "@odata.type": "#microsoft.graph.security.fileEvidence",
                    "fileDetails": {"fileName": "a.dll", "filePath": "C:\\Temp", "signer": "Contoso"},
                },
            ],
        }
    )
    assert alert.process is not None and alert.process.parent is not None and alert.file is not None
    assert (alert.process.signer, alert.process.signature_valid) == ("Microsoft Windows", None)
    assert alert.process.parent.signer == "Microsoft Corporation"
    assert (alert.file.signer, alert.file.signature_valid) == ("Contoso", None)


def test_sentinelone_alert_and_threat_signers() -> None:
    alert = one(
        {
            "alertInfo": {"alertId": "s1-sig-1", "createdAt": AT},
            "ruleInfo": {"name": "Remote tool", "severity": "Medium"},
            "sourceProcessInfo": {"filePath": "C:\\x\\a.exe", "fileSignerIdentity": "ATERA NETWORKS LTD"},
            "sourceParentProcessInfo": {
                "filePath": "C:\\Windows\\System32\\services.exe",
                "fileSignerIdentity": "MICROSOFT WINDOWS PUBLISHER",
            },
            "targetProcessInfo": {"tgtFilePath": "C:\\x\\b.exe", "tgtFileIsSigned": "unsigned"},
        }
    )
    assert alert.process is not None and alert.process.parent is not None and alert.file is not None
    assert (alert.process.signer, alert.process.signature_valid) == ("ATERA NETWORKS LTD", None)
    assert alert.process.parent.signer == "MICROSOFT WINDOWS PUBLISHER"
    assert alert.file.signature_valid is False
    threat = {
        "id": "s1-sig-2",
        "threatInfo": {
            "threatId": "s1-sig-2",
            "createdAt": AT,
            "threatName": "OfficeClickToRun.exe",
            "filePath": "C:\\Users\\r\\AppData\\Roaming\\OfficeClickToRun.exe",
            "publisherName": "Microsoft Corporation",
            "isValidCertificate": False,
            "maliciousProcessArguments": "OfficeClickToRun.exe /update",
        },
    }
    alert = one(threat)
    assert alert.file is not None and alert.process is not None
    assert (alert.file.signer, alert.file.signature_valid) == ("Microsoft Corporation", False)
    assert (alert.process.signer, alert.process.signature_valid) == ("Microsoft Corporation", False)
    threat["threatInfo"] |= {"isValidCertificate": True, "id": "s1-sig-3"}
    assert one(threat).file.signature_valid is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("state_id", "valid"),
    [(1, True), (2, False), (3, False), (0, None), (99, None)],
)
def test_ocsf_signature_state_and_subject(state_id: int, valid: bool | None) -> None:
    signature = {
        "certificate": {"subject": 'CN="ConnectWise, LLC", O="ConnectWise, LLC", C=US'},
        "state_id": state_id,
    }
    alert = one(
        {
            "class_uid": 2004,
            "time": AT,
            "finding_info": {"uid": f"ocsf-sig-{state_id}", "title": "Remote tool"},
            "actor": {
                "process": {
                    "name": "ScreenConnect.ClientService.exe",
                    "file": {"path": "C:\\SC\\ScreenConnect.ClientService.exe", "signature": signature},
                }
            },
            "evidences": [{"file": {"path": "C:\\SC\\x.dll", "signature": signature}}],
        }
    )
    assert alert.process is not None and alert.file is not None
    assert (alert.process.signer, alert.process.signature_valid) == ("ConnectWise, LLC", valid)
    assert (alert.file.signer, alert.file.signature_valid) == ("ConnectWise, LLC", valid)
