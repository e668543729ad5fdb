"""Writes cases.jsonl of the `benign` suite: legitimate activity that trips EDR detections, and malicious
look-alikes of the same activity, in the six vendor formats soctriage ingests.

    .venv/bin/python evals/suites/benign/make_cases.py

Written for this project; every host, account, address and hash is fictional. The organisation (Fabrikam,
fabrikam.example) is described in context.yaml and inventory.yaml beside this script; this script also
writes intel.jsonl, what the organisation's threat intel knows about the suite's hashes and addresses. Each
malicious look-alike carries the same title, rule and command-line words as its benign twin and differs only
in facts its author cannot easily fake: the host, the account, the image path, the signer, the parent, a hash
the intel file knows, or the time. Edit the scenarios here and re-run; never edit cases.jsonl by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENIGN = ["benign_true_positive", "false_positive"]
MISFIRE = ["false_positive", "benign_true_positive"]
MALICIOUS = "true_positive"

DOMAIN = "FABRIKAM"
JUMP_01, JUMP_02 = ("FAB-JUMP-01", "10.40.5.11"), ("FAB-JUMP-02", "10.40.5.12")
SCANNER = ("FAB-SCAN-01", "10.40.9.50")
DEPLOY = ("FAB-DEPLOY-01", "10.40.5.20")


def sha(label: str) -> str:
    """A fictional, stable sha256 for a named binary."""
    return hashlib.sha256(f"fabrikam-benign-suite:{label}".encode()).hexdigest()


@dataclasses.dataclass
class Proc:
    path: str
    cmdline: str | None = None
    sha256: str | None = None
    signer: str | None = None
    valid: bool | None = None
    pid: int = 4100

    @property
    def name(self) -> str:
        return self.path.replace("/", "\\").rsplit("\\", 1)[-1]


@dataclasses.dataclass
class Event:
    """The vendor-neutral facts of one alert."""

    id: str
    vendor: str
    activity: str
    expected: Any
    reason: str
    title: str
    description: str
    technique: tuple[str, str, str, str]  # tactic id, tactic name, technique id, technique name
    severity: str
    time: str
    host: str
    host_ip: str
    user: str | None = None
    os: str = "windows"
    process: Proc | None = None
    parent: Proc | None = None
    file: Proc | None = None
    src_ip: str | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    url: str | None = None
    sender: str | None = None
    logon_type: int | None = None
    event_id: int | None = None


# --- vendor renderers ----------------------------------------------------------------------------------

_SEVERITY_SCORE = {"low": 30, "medium": 50, "high": 70, "critical": 90}
_WAZUH_LEVEL = {"low": 5, "medium": 10, "high": 12, "critical": 15}
_OCSF_SEVERITY = {"low": 2, "medium": 3, "high": 4, "critical": 5}


def _split_user(user: str | None) -> tuple[str | None, str | None]:
    if not user:
        return None, None
    if "\\" in user:
        domain, name = user.split("\\", 1)
        return domain, name
    return None, user


def _device_path(path: str) -> str:
    """CrowdStrike reports Windows images as NT device paths."""
    return "\\Device\\HarddiskVolume3\\" + path[3:] if path[1:3] == ":\\" else path


def crowdstrike(e: Event) -> dict[str, Any]:
    tactic_id, tactic, technique_id, technique = e.technique
    domain, name = _split_user(e.user)
    record: dict[str, Any] = {
        "composite_id": f"fab:ind:{e.id}",
        "id": f"ind:{e.id}",
        "cid": "f4b1c0de5eed4a7b9c3d2e1f0a9b8c7d",
        "agent_id": hashlib.md5(e.host.encode()).hexdigest(),
        "product": "epp",
        "type": "ldt",
        "name": e.title.replace(" ", ""),
        "display_name": e.title,
        "description": e.description,
        "severity": _SEVERITY_SCORE[e.severity],
        "severity_name": e.severity.capitalize(),
        "tactic": tactic,
        "tactic_id": tactic_id,
        "technique": technique,
        "technique_id": technique_id,
        "status": "new",
        "timestamp": e.time,
        "device": {
            "device_id": hashlib.md5(e.host.encode()).hexdigest(),
            "hostname": e.host,
            "local_ip": e.host_ip,
            "platform_name": {"windows": "Windows", "linux": "Linux", "macos": "Mac"}[e.os],
            "os_version": {"windows": "Windows 11", "linux": "Ubuntu 22.04", "macos": "macOS 14"}[e.os],
        },
        "user_name": name,
        "logon_domain": domain,
    }
    if e.process:
        record |= {
            "filename": e.process.name,
            "filepath": _device_path(e.process.path),
            "cmdline": e.process.cmdline,
            "sha256": e.process.sha256,
            "local_process_id": str(e.process.pid),
        }
    if e.parent:
        record["parent_details"] = {
            "filename": e.parent.name,
            "filepath": _device_path(e.parent.path),
            "cmdline": e.parent.cmdline,
            "sha256": e.parent.sha256,
            "local_process_id": str(e.parent.pid),
        }
    return {k: v for k, v in record.items() if v is not None}


def _graph_file(p: Proc) -> dict[str, Any]:
    folder, _, name = p.path.rpartition("\\")
    out = {"fileName": name, "filePath": folder, "sha256": p.sha256, "signer": p.signer}
    return {k: v for k, v in out.items() if v is not None}


def defender(e: Event) -> dict[str, Any]:
    _, tactic, technique_id, _ = e.technique
    domain, name = _split_user(e.user)
    evidence: list[dict[str, Any]] = [
        {
            "@odata.type": "#microsoft.graph.security.deviceEvidence",
            "deviceDnsName": f"{e.host.lower()}.fabrikam.example",
            "osPlatform": {"windows": "Windows11", "linux": "Linux", "macos": "macOS"}[e.os],
            "mdeDeviceId": hashlib.sha1(e.host.encode()).hexdigest(),
            "roles": [],
            "verdict": "unknown",
        }
    ]
    account = {"accountName": name, "domainName": domain} if name else None
    if e.process:
        item: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.security.processEvidence",
            "processId": e.process.pid,
            "processCommandLine": e.process.cmdline,
            "imageFile": _graph_file(e.process),
            "roles": [],
            "verdict": "unknown",
        }
        if e.parent:
            item["parentProcessId"] = e.parent.pid
            item["parentProcessImageFile"] = _graph_file(e.parent)
        if account:
            item["userAccount"] = account
        evidence.append(item)
    elif account:
        evidence.append({"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": account})
    if e.file:
        evidence.append(
            {"@odata.type": "#microsoft.graph.security.fileEvidence", "fileDetails": _graph_file(e.file)}
        )
    if e.url:
        evidence.append({"@odata.type": "#microsoft.graph.security.urlEvidence", "url": e.url})
    service = "microsoftDefenderForOffice365" if e.url and not e.process else "microsoftDefenderForEndpoint"
    return {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": f"da{hashlib.sha1(e.id.encode()).hexdigest()[:16]}_{e.id}",
        "providerAlertId": e.id,
        "serviceSource": service,
        "detectionSource": "microsoftDefenderForEndpoint",
        "detectorId": hashlib.md5(e.title.encode()).hexdigest()[:8],
        "title": e.title,
        "description": e.description,
        "severity": "informational"
        if e.severity == "low"
        else e.severity
        if e.severity != "critical"
        else "high",
        "category": tactic.replace(" ", ""),
        "status": "new",
        "createdDateTime": e.time,
        "mitreTechniques": [technique_id],
        "evidence": evidence,
    }


def sentinelone(e: Event) -> dict[str, Any]:
    """A STAR/cloud-detection alert; file-only detections become a threat."""
    domain, name = _split_user(e.user)
    agent = {
        "agentComputerName": e.host,
        "agentOsName": {"windows": "Windows 11 Enterprise", "linux": "Ubuntu", "macos": "macOS"}[e.os],
        "agentUuid": hashlib.md5(e.host.encode()).hexdigest(),
    }
    if e.file and not e.process:
        _, tactic, technique_id, _ = e.technique
        return {
            "id": f"s1-{e.id}",
            "agentRealtimeInfo": agent,
            "agentDetectionInfo": {"agentIpV4": e.host_ip, "agentLastLoggedInUserName": e.user},
            "threatInfo": {
                "threatId": f"s1-{e.id}",
                "threatName": e.file.name,
                "classification": "Malware" if e.severity in ("high", "critical") else "PUA",
                "confidenceLevel": "suspicious",
                "createdAt": e.time,
                "filePath": e.file.path,
                "sha256": e.file.sha256,
                "publisherName": e.file.signer or "",
                "isValidCertificate": bool(e.file.valid),
                "fileVerificationType": "SignedVerified" if e.file.valid else "NotSigned",
                "processUser": e.user,
                "originatorProcess": e.parent.name if e.parent else None,
                "detectionEngines": [{"key": "sentinelone_cloud", "title": "SentinelOne Cloud"}],
            },
            "indicators": [
                {
                    "description": e.description,
                    "tactics": [{"name": tactic, "techniques": [{"name": technique_id}]}],
                }
            ],
        }

    def info(p: Proc | None) -> dict[str, Any] | None:
        if p is None:
            return None
        out = {
            "name": p.name,
            "pid": str(p.pid),
            "commandline": p.cmdline,
            "filePath": p.path,
            "fileHashSha256": p.sha256,
            "fileSignerIdentity": p.signer.upper() if p.signer else None,
            "user": e.user,
        }
        return {k: v for k, v in out.items() if v is not None}

    record: dict[str, Any] = {
        "alertInfo": {
            "alertId": f"s1a-{e.id}",
            "createdAt": e.time,
            "analystVerdict": "Undefined",
            "incidentStatus": "Unresolved",
            "srcIp": e.src_ip,
            "dstIp": e.dst_ip,
            "dstPort": e.dst_port,
            "loginsUserName": name if not e.process else None,
            "loginAccountDomain": domain if not e.process else None,
        },
        "ruleInfo": {
            "id": hashlib.md5(e.title.encode()).hexdigest()[:18],
            "name": e.title,
            "description": e.description,
            "severity": e.severity.capitalize(),
        },
        "agentRealtimeInfo": agent,
        "agentDetectionInfo": {"agentIpV4": e.host_ip},
        "sourceProcessInfo": info(e.process),
        "sourceParentProcessInfo": info(e.parent),
    }
    record["alertInfo"] = {k: v for k, v in record["alertInfo"].items() if v is not None}
    return {k: v for k, v in record.items() if v is not None}


def _ecs_process(p: Proc) -> dict[str, Any]:
    out: dict[str, Any] = {"name": p.name, "pid": p.pid, "executable": p.path}
    if p.cmdline:
        out["command_line"] = p.cmdline
    if p.sha256:
        out["hash"] = {"sha256": p.sha256}
    if p.signer is not None or p.valid is not None:
        out["code_signature"] = {"exists": p.signer is not None}
        if p.signer:
            out["code_signature"] |= {"subject_name": p.signer, "trusted": bool(p.valid)}
            if not p.valid:
                out["code_signature"]["status"] = "errorUntrustedRoot"
    return out


def elastic(e: Event) -> dict[str, Any]:
    tactic_id, tactic, technique_id, technique = e.technique
    domain, name = _split_user(e.user)
    doc: dict[str, Any] = {
        "@timestamp": e.time,
        "kibana.alert.uuid": f"el-{e.id}",
        "kibana.alert.severity": e.severity,
        "kibana.alert.risk_score": _SEVERITY_SCORE[e.severity],
        "kibana.alert.reason": e.description,
        "kibana.alert.rule.name": e.title,
        "kibana.alert.rule.rule_id": hashlib.md5(e.title.encode()).hexdigest(),
        "kibana.alert.rule.threat": [
            {
                "framework": "MITRE ATT&CK",
                "tactic": {"id": tactic_id, "name": tactic},
                "technique": [{"id": technique_id.split(".")[0], "name": technique}]
                if "." not in technique_id
                else [
                    {
                        "id": technique_id.split(".")[0],
                        "name": technique,
                        "subtechnique": [{"id": technique_id, "name": technique}],
                    }
                ],
            }
        ],
        "host": {
            "name": e.host,
            "ip": [e.host_ip],
            "os": {"name": {"windows": "Windows", "linux": "Linux", "macos": "macOS"}[e.os]},
        },
    }
    if name:
        doc["user"] = {"name": name} | ({"domain": domain} if domain else {})
    if e.process:
        doc["process"] = _ecs_process(e.process)
        if e.parent:
            doc["process"]["parent"] = _ecs_process(e.parent)
    if e.file:
        doc["file"] = {"path": e.file.path, "name": e.file.name}
        if e.file.sha256:
            doc["file"]["hash"] = {"sha256": e.file.sha256}
    if e.src_ip:
        doc["source"] = {"ip": e.src_ip}
    if e.dst_ip:
        doc["destination"] = {"ip": e.dst_ip} | ({"port": e.dst_port} if e.dst_port else {})
    if e.url:
        doc["url"] = {"full": e.url}
    return doc


def wazuh(e: Event) -> dict[str, Any]:
    _, tactic, technique_id, technique = e.technique
    domain, name = _split_user(e.user)
    eventdata: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if e.os == "linux":
        data = {"srcip": e.src_ip, "srcuser": name, "dstuser": name}
        if e.process:
            data["audit"] = {"exe": e.process.path, "command": e.process.cmdline, "auid": name}
    else:
        if e.event_id in (4624, 4625):
            eventdata = {
                "targetUserName": name,
                "targetDomainName": domain,
                "ipAddress": e.src_ip,
                "logonType": str(e.logon_type or 3),
                "workstationName": e.host,
            }
        if e.process:
            eventdata |= {
                "image": e.process.path,
                "commandLine": e.process.cmdline,
                "processId": str(e.process.pid),
                "user": e.user,
            }
            if e.process.sha256:
                eventdata["hashes"] = (
                    f"SHA1={hashlib.sha1(e.process.sha256.encode()).hexdigest()},SHA256={e.process.sha256}"
                )
        if e.parent:
            eventdata |= {"parentImage": e.parent.path, "parentCommandLine": e.parent.cmdline}
        data = {
            "win": {
                "system": {
                    "eventID": str(e.event_id or 1),
                    "computer": f"{e.host}.fabrikam.example",
                    "providerName": "Microsoft-Windows-Sysmon"
                    if e.event_id in (None, 1)
                    else "Microsoft-Windows-Security-Auditing",
                },
                "eventdata": {k: v for k, v in eventdata.items() if v is not None},
            }
        }
    return {
        "timestamp": e.time,
        "id": f"{int(hashlib.md5(e.id.encode()).hexdigest()[:8], 16)}.{sum(map(ord, e.id))}",
        "rule": {
            "level": _WAZUH_LEVEL[e.severity],
            "description": e.title,
            "id": str(90000 + sum(map(ord, e.title)) % 9999),
            "mitre": {"id": [technique_id], "tactic": [tactic], "technique": [technique]},
            "groups": ["fabrikam", e.activity],
        },
        "agent": {"id": str(100 + sum(map(ord, e.host)) % 800), "name": e.host, "ip": e.host_ip},
        "manager": {"name": "fab-wazuh-01"},
        "decoder": {"name": "windows_eventchannel" if e.os == "windows" else "sshd"},
        "data": {k: v for k, v in data.items() if v is not None},
        "full_log": e.description,
    }


def _dn(value: str) -> str:
    """An RDN value as a certificate subject writes it: quoted when it holds a comma."""
    return f'"{value}"' if "," in value else value


def _ocsf_process(p: Proc, user: str | None) -> dict[str, Any]:
    file: dict[str, Any] = {"path": p.path, "name": p.name}
    if p.sha256:
        file["hashes"] = [{"algorithm_id": 3, "algorithm": "SHA-256", "value": p.sha256}]
    if p.signer:
        file["signature"] = {
            "algorithm_id": 3,
            "certificate": {
                "subject": f"CN={_dn(p.signer)}, O={_dn(p.signer)}",
                "issuer": "CN=Fictional Code Signing CA",
            },
            "state_id": 1 if p.valid else 99,
        }
    out: dict[str, Any] = {"name": p.name, "pid": p.pid, "file": file}
    if p.cmdline:
        out["cmd_line"] = p.cmdline
    return out


def ocsf(e: Event) -> dict[str, Any]:
    tactic_id, tactic, technique_id, technique = e.technique
    domain, name = _split_user(e.user)
    record: dict[str, Any] = {
        "class_uid": 2004,
        "category_uid": 2,
        "activity_id": 1,
        "type_uid": 200401,
        "time": e.time,
        "severity_id": _OCSF_SEVERITY[e.severity],
        "metadata": {
            "version": "1.1.0",
            "product": {"name": "Fabrikam Detections", "vendor_name": "Fabrikam SOC"},
        },
        "finding_info": {
            "uid": f"ocsf-{e.id}",
            "title": e.title,
            "desc": e.description,
            "analytic": {
                "name": e.title,
                "uid": hashlib.md5(e.title.encode()).hexdigest()[:12],
                "type_id": 1,
            },
            "attacks": [
                {
                    "tactic": {"uid": tactic_id, "name": tactic},
                    "technique": {"uid": technique_id, "name": technique},
                }
            ],
        },
        "device": {"hostname": e.host, "ip": e.host_ip, "os": {"name": e.os.capitalize()}},
    }
    actor: dict[str, Any] = {}
    if name:
        actor["user"] = {"name": name} | ({"domain": domain} if domain else {})
    if e.process:
        actor["process"] = _ocsf_process(e.process, e.user)
        if e.parent:
            actor["process"]["parent_process"] = _ocsf_process(e.parent, None)
    if actor:
        record["actor"] = actor
    evidence: dict[str, Any] = {}
    if e.src_ip:
        evidence["src_endpoint"] = {"ip": e.src_ip}
    if e.dst_ip:
        evidence["dst_endpoint"] = {"ip": e.dst_ip} | ({"port": e.dst_port} if e.dst_port else {})
    if e.url:
        evidence["url"] = {"url_string": e.url}
    if e.file:
        evidence["file"] = _ocsf_process(e.file, None)["file"]
    if evidence:
        record["evidences"] = [evidence]
    if e.sender:
        record["observables"] = [{"name": "email.from", "type_id": 5, "value": e.sender}]
    return record


RENDER = {
    "crowdstrike": crowdstrike,
    "defender": defender,
    "sentinelone": sentinelone,
    "elastic": elastic,
    "wazuh": wazuh,
    "ocsf": ocsf,
}


# --- the organisation's programs -----------------------------------------------------------------------

SYSTEM = "NT AUTHORITY\\SYSTEM"
MS = "Microsoft Corporation"
SERVICES = Proc("C:\\Windows\\System32\\services.exe", "C:\\Windows\\system32\\services.exe", pid=712)
EXPLORER = Proc("C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", pid=5120)
CMD = "C:\\Windows\\System32\\cmd.exe"
POWERSHELL = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
WINWORD = "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE"
EXCEL = "C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE"

PSEXESVC = Proc(
    "C:\\Windows\\PSEXESVC.exe", "C:\\Windows\\PSEXESVC.exe", sha("PSEXESVC 2.43"), MS, True, 3312
)
PSEXEC64 = "C:\\Program Files\\Sysinternals\\PsExec64.exe"
PSEXEC_CMD = (
    'PsExec64.exe \\\\FAB-SQL-02 -accepteula -s cmd /c "net stop MSSQLSERVER && net start MSSQLSERVER"'
)
CCMEXEC = Proc(
    "C:\\Windows\\CCM\\CcmExec.exe", "C:\\Windows\\CCM\\CcmExec.exe", sha("CcmExec 5.00"), MS, True, 2240
)
CCM_PS = (
    "powershell.exe -NoLogo -NonInteractive -ExecutionPolicy Bypass -File "
    '"C:\\Windows\\CCM\\SystemTemp\\3f9c2e1a-7b44-4d0e-9a61-5c2f0b7d8e11.ps1"'
)
IME = Proc(
    "C:\\Program Files (x86)\\Microsoft Intune Management Extension\\AgentExecutor.exe",
    '"C:\\Program Files (x86)\\Microsoft Intune Management Extension\\AgentExecutor.exe" -powershell',
    sha("AgentExecutor 1.80"),
    MS,
    True,
    6620,
)
IME_PS = (
    '"C:\\WINDOWS\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -NoProfile -executionPolicy bypass -file '
    '"C:\\Program Files (x86)\\Microsoft Intune Management Extension\\Policies\\Scripts\\'
    '5f1e8c2a-1d4b-4e0f-8c3a-2b9d7e6f5a41_1.ps1"'
)
JAMF = Proc(
    "/usr/local/jamf/bin/jamf",
    "/usr/local/jamf/bin/jamf policy -event daily",
    sha("jamf 11.9"),
    "JAMF Software",
    True,
    911,
)
JAMF_SH = "/bin/bash /Library/Application Support/JAMF/tmp/fabrikam-inventory-fix.sh"
PDQ_RUNNER = Proc(
    "C:\\Windows\\AdminArsenal\\PDQDeployRunner\\service-1\\PDQDeployRunner-1.exe",
    "C:\\Windows\\AdminArsenal\\PDQDeployRunner\\service-1\\PDQDeployRunner-1.exe",
    sha("PDQDeployRunner 19.4"),
    "PDQ.com Corporation",
    True,
    5012,
)
PDQ_CMD = 'cmd.exe /c "C:\\Windows\\AdminArsenal\\PDQDeployRunner\\service-1\\exec\\install-fabrikam-vpn.bat"'
GC_WORKER = Proc(
    "C:\\Program Files\\AzureConnectedMachineAgent\\GCArcService\\GC\\gc_worker.exe",
    '"C:\\Program Files\\AzureConnectedMachineAgent\\GCArcService\\GC\\gc_worker.exe" -a PolicyAgent',
    sha("gc_worker 1.48"),
    MS,
    True,
    4420,
)
GC_PS = (
    "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File "
    '"C:\\ProgramData\\GuestConfig\\Configuration\\AzureWindowsBaseline\\Modules\\Audit.ps1"'
)
SENSE_IR = Proc(
    "C:\\Program Files\\Windows Defender Advanced Threat Protection\\SenseIR.exe",
    '"C:\\Program Files\\Windows Defender Advanced Threat Protection\\SenseIR.exe" "OnlineSenseIR"',
    sha("SenseIR 10.8"),
    MS,
    True,
    7300,
)
SENSE_PS = (
    'powershell.exe -ExecutionPolicy AllSigned -NoProfile -NonInteractive -Command "& {$OutputEncoding = '
    '[Console]::OutputEncoding = [System.Text.Encoding]::UTF8; Get-Process | Select-Object -First 50}"'
)
MSMPENG = Proc(
    "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0\\MsMpEng.exe",
    '"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24090.11-0\\MsMpEng.exe"',
    sha("MsMpEng 4.18.24090"),
    MS,
    True,
    3888,
)
VEEAM = Proc(
    "C:\\Program Files\\Veeam\\Endpoint Backup\\Veeam.EndPoint.Service.exe",
    '"C:\\Program Files\\Veeam\\Endpoint Backup\\Veeam.EndPoint.Service.exe"',
    sha("Veeam.EndPoint.Service 6.1"),
    "Veeam Software Group GmbH",
    True,
    2890,
)
SYSMON = Proc("C:\\Windows\\Sysmon64.exe", "C:\\Windows\\Sysmon64.exe", sha("Sysmon64 15.15"), MS, True, 2150)
MBAM = Proc(
    "C:\\Program Files\\Malwarebytes\\Anti-Malware\\MBAMService.exe",
    '"C:\\Program Files\\Malwarebytes\\Anti-Malware\\MBAMService.exe"',
    sha("MBAMService 5.2"),
    "Malwarebytes Inc",
    True,
    3010,
)
MCAFEE = Proc(
    "C:\\Program Files\\Common Files\\McAfee\\MMSSHost\\MMSSHOST.exe",
    '"C:\\Program Files\\Common Files\\McAfee\\MMSSHost\\MMSSHOST.exe"',
    sha("MMSSHOST 3.7"),
    "McAfee, LLC",
    True,
    3120,
)
PROCDUMP_CMD = "procdump64.exe -accepteula -ma lsass.exe C:\\Users\\Public\\lsass.dmp"
GOOGLE_UPDATE = "C:\\Program Files (x86)\\Google\\Update\\GoogleUpdate.exe"
GOOGLE_UPDATE_CMD = f'"{GOOGLE_UPDATE}" /ua /installsource scheduler'
EDGE_UPDATE = "C:\\Program Files (x86)\\Microsoft\\EdgeUpdate\\MicrosoftEdgeUpdate.exe"
EDGE_UPDATE_CMD = f'"{EDGE_UPDATE}" /ua /installsource scheduler'
ADOBE_ARM = "C:\\Program Files (x86)\\Common Files\\Adobe\\ARM\\1.0\\AdobeARM.exe"
C2R = "C:\\Program Files\\Common Files\\microsoft shared\\ClickToRun\\Updates\\16.0.18129.20158\\OfficeClickToRun.exe"
DROPBOX_UPDATE = "C:\\Program Files (x86)\\Dropbox\\Update\\DropboxUpdate.exe"
FIREFOX = Proc(
    "C:\\Program Files\\Mozilla Firefox\\firefox.exe",
    '"C:\\Program Files\\Mozilla Firefox\\firefox.exe"',
    sha("firefox 135"),
    "Mozilla Corporation",
    True,
    8120,
)
FIREFOX_UPDATER = "C:\\Program Files\\Mozilla Firefox\\updater.exe"
ONEDRIVE = "C:\\Program Files\\Microsoft OneDrive\\StandaloneUpdater\\OneDriveSetup.exe"
SCHEDULER = Proc(
    "C:\\Windows\\System32\\svchost.exe",
    "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
    pid=1460,
)
GITLAB_RUNNER = Proc(
    "/usr/bin/gitlab-runner",
    "/usr/bin/gitlab-runner run --working-directory /home/gitlab-runner",
    sha("gitlab-runner 17.8"),
    pid=1022,
)
APACHE = Proc("/usr/sbin/apache2", "/usr/sbin/apache2 -k start", pid=880)
NODESOURCE = 'bash -c "curl -fsSL https://deb.nodesource.com/setup_20.x | bash -"'
RUSTUP = "curl -fsSL https://sh.rustup.rs -o /tmp/rustup-init.sh"
MSBUILD = (
    "C:\\Program Files\\Microsoft Visual Studio\\2022\\BuildTools\\MSBuild\\Current\\Bin\\amd64\\MSBuild.exe"
)
MSBUILD_CMD = "MSBuild.exe Fabrikam.Billing.sln /t:Build /p:Configuration=Release /m"
AZDO_AGENT = Proc(
    "C:\\agent\\bin\\Agent.Worker.exe", "C:\\agent\\bin\\Agent.Worker.exe spawnclient 1796 1800", pid=4470
)
CSC = "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\csc.exe"
CSC_CMD = 'csc.exe /noconfig /fullpaths @"C:\\agent\\_work\\_temp\\Fabrikam.Billing.rsp"'
VS_SETUP = "C:\\Program Files (x86)\\Microsoft Visual Studio\\Installer\\setup.exe"
VS_SETUP_CMD = (
    "setup.exe install --channelId VisualStudio.17.Release --productId "
    "Microsoft.VisualStudio.Product.Professional --passive --norestart"
)
SC_ROOT = "C:\\Program Files (x86)\\ScreenConnect Client (f3a1c9d0e5b74a62)"
SC_ROGUE = "C:\\Program Files (x86)\\ScreenConnect Client (9b7e2d44c1a0f385)"
SC_CMD = (
    '"{root}\\ScreenConnect.ClientService.exe" "?e=Access&y=Guest&h=relay.fabrikam-support.example&p=8041"'
)
CONNECTWISE = "ConnectWise, LLC"
SC_SERVICE = Proc(
    f"{SC_ROOT}\\ScreenConnect.ClientService.exe",
    SC_CMD.format(root=SC_ROOT),
    sha("ScreenConnect.ClientService 24.3"),
    CONNECTWISE,
    True,
    3550,
)
LABEL = "C:\\Program Files\\Fabrikam\\LabelStudio\\LabelStudio.exe"
LABEL_SHA = sha("LabelStudio 5.2")
SC_INSTALL = (
    'sc.exe create FabrikamMonitor binPath= "C:\\Program Files\\Fabrikam\\Monitor\\fmonsvc.exe" start= auto'
)

PSEXEC_T = ("TA0002", "Execution", "T1569.002", "Service Execution")
AGENT_T = ("TA0002", "Execution", "T1059.001", "PowerShell")
LSASS_T = ("TA0006", "Credential Access", "T1003.001", "LSASS Memory")
LOGON_T = ("TA0006", "Credential Access", "T1110.001", "Password Guessing")
UPDATE_T = ("TA0011", "Command and Control", "T1105", "Ingress Tool Transfer")
SHELL_T = ("TA0002", "Execution", "T1059.004", "Unix Shell")
BUILD_T = ("TA0005", "Defense Evasion", "T1127.001", "MSBuild")
RMM_T = ("TA0011", "Command and Control", "T1219", "Remote Access Software")
PHISH_T = ("TA0001", "Initial Access", "T1566.002", "Spearphishing Link")
SERVICE_T = ("TA0003", "Persistence", "T1543.003", "Windows Service")
CAPTURE_T = ("TA0009", "Collection", "T1056.001", "Keylogging")


def user_proc(
    path: str,
    cmdline: str | None = None,
    digest: str | None = None,
    signer: str | None = None,
    valid: bool | None = None,
    pid: int = 6000,
) -> Proc:
    return Proc(path, cmdline, digest, signer, valid, pid)


def cases() -> list[Event]:
    out: list[Event] = []

    def add(**fields: Any) -> None:
        out.append(Event(**fields))

    # --- PsExec: IT from the jump hosts with admin accounts vs an intruder -------------------------------
    psexec = {
        "activity": "psexec",
        "title": "PsExec service started on a remote host",
        "description": "The PsExec service (PSEXESVC) was installed and started, which runs commands sent"
        " from another machine with SYSTEM rights.",
        "technique": PSEXEC_T,
        "severity": "medium",
    }
    add(
        id="psexec-it-01",
        vendor="elastic",
        expected=BENIGN,
        reason="IT admin account, from jump host FAB-JUMP-01, signed PSEXESVC in C:\\Windows",
        time="2025-03-04T09:14:22Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\adm-okoch",
        process=PSEXESVC,
        parent=SERVICES,
        src_ip=JUMP_01[1],
        **psexec,
    )
    add(
        id="psexec-it-02",
        vendor="sentinelone",
        expected=BENIGN,
        reason="IT admin account, from jump host FAB-JUMP-02",
        time="2025-03-05T13:40:05Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=f"{DOMAIN}\\adm-lperez",
        process=PSEXESVC,
        parent=SERVICES,
        src_ip=JUMP_02[1],
        **psexec,
    )
    add(
        id="psexec-it-03",
        vendor="ocsf",
        expected=BENIGN,
        reason="IT admin account, from jump host FAB-JUMP-01",
        time="2025-03-06T10:02:51Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=f"{DOMAIN}\\adm-okoch",
        process=PSEXESVC,
        parent=SERVICES,
        src_ip=JUMP_01[1],
        **psexec,
    )
    psexec_src = psexec | {
        "title": "PsExec launched against a remote host",
        "description": "PsExec was run with -s against a remote computer, a common lateral movement technique.",
    }
    add(
        id="psexec-it-04",
        vendor="defender",
        expected=BENIGN,
        reason="run on jump host FAB-JUMP-02 by an IT admin account, signed binary in Program Files",
        time="2025-03-05T13:39:58Z",
        host=JUMP_02[0],
        host_ip=JUMP_02[1],
        user=f"{DOMAIN}\\adm-lperez",
        process=Proc(PSEXEC64, PSEXEC_CMD, sha("PsExec64 2.43"), MS, True, 7716),
        parent=Proc(CMD, "cmd.exe", pid=7002),
        **psexec_src,
    )
    add(
        id="psexec-it-05",
        vendor="wazuh",
        expected=BENIGN,
        reason="run on jump host FAB-JUMP-01 by an IT admin account",
        time="2025-03-06T10:02:44Z",
        host=JUMP_01[0],
        host_ip=JUMP_01[1],
        user=f"{DOMAIN}\\adm-okoch",
        process=Proc(PSEXEC64, PSEXEC_CMD, sha("PsExec64 2.43"), pid=7720),
        parent=Proc(CMD, "cmd.exe", pid=7010),
        **psexec_src,
    )
    add(
        id="psexec-it-06",
        vendor="crowdstrike",
        expected=BENIGN,
        reason="run on jump host FAB-JUMP-01 by an IT admin account",
        time="2025-03-11T15:21:09Z",
        host=JUMP_01[0],
        host_ip=JUMP_01[1],
        user=f"{DOMAIN}\\adm-okoch",
        process=Proc(PSEXEC64, PSEXEC_CMD, sha("PsExec64 2.43"), pid=7730),
        parent=Proc(CMD, "cmd.exe", pid=7011),
        **psexec_src,
    )
    add(
        id="psexec-intruder-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="regular user account, from workstation FAB-WS-1042 (not a jump host)",
        time="2025-03-04T09:31:40Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\m.ivanova",
        process=PSEXESVC,
        parent=SERVICES,
        src_ip="10.40.30.42",
        **psexec,
    )
    add(
        id="psexec-intruder-02",
        vendor="sentinelone",
        expected=MALICIOUS,
        reason="admin account used from workstation FAB-WS-1107, not from a jump host: stolen credentials",
        time="2025-03-07T02:48:13Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=f"{DOMAIN}\\adm-lperez",
        process=PSEXESVC,
        parent=SERVICES,
        src_ip="10.40.31.107",
        **psexec,
    )
    add(
        id="psexec-intruder-03",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="run on a workstation by a regular user from a user-writable folder",
        time="2025-03-07T02:47:30Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(
            "C:\\Users\\t.nguyen\\AppData\\Local\\Temp\\PsExec64.exe",
            PSEXEC_CMD,
            sha("PsExec64 2.43"),
            pid=9120,
        ),
        parent=Proc(CMD, "cmd.exe", pid=9002),
        **psexec_src,
    )
    add(
        id="psexec-intruder-04",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="admin account, but from workstation FAB-WS-1042 at 03:12",
        time="2025-03-08T02:12:19Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=f"{DOMAIN}\\adm-okoch",
        process=PSEXESVC,
        parent=SERVICES,
        src_ip="10.40.30.42",
        **psexec,
    )

    # --- management agents running scripts vs the same LOLBins launched by Office or a fake agent --------
    agent = {
        "activity": "management-agent",
        "title": "PowerShell script execution with execution policy bypass",
        "description": "PowerShell ran a script file with -ExecutionPolicy Bypass, non-interactively.",
        "technique": AGENT_T,
        "severity": "medium",
    }
    add(
        id="agent-sccm-01",
        vendor="elastic",
        expected=BENIGN,
        reason="child of the signed ConfigMgr client C:\\Windows\\CCM\\CcmExec.exe, as SYSTEM",
        time="2025-03-04T11:05:13Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=Proc(POWERSHELL, CCM_PS, sha("powershell 10.0.22621"), MS, True, 8840),
        parent=CCMEXEC,
        **agent,
    )
    add(
        id="agent-intune-01",
        vendor="defender",
        expected=BENIGN,
        reason="child of the Intune Management Extension AgentExecutor in Program Files, as SYSTEM",
        time="2025-03-05T08:12:40Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=SYSTEM,
        process=Proc(POWERSHELL, IME_PS, sha("powershell 10.0.22621"), MS, None, 6720),
        parent=IME,
        **agent,
    )
    add(
        id="agent-jamf-01",
        vendor="sentinelone",
        expected=BENIGN,
        reason="script run by the Jamf agent /usr/local/jamf/bin/jamf as root",
        time="2025-03-05T16:30:02Z",
        host="FAB-MBP-3310",
        host_ip="10.40.33.10",
        os="macos",
        user="root",
        process=Proc("/bin/bash", JAMF_SH, sha("bash 3.2.57"), pid=15302),
        parent=JAMF,
        **agent
        | {
            "technique": SHELL_T,
            "title": "Shell script executed from a temporary folder",
            "description": "A shell script ran from a temporary folder as root.",
        },
    )
    add(
        id="agent-pdq-01",
        vendor="wazuh",
        expected=BENIGN,
        reason="PDQ Deploy runner service in C:\\Windows\\AdminArsenal, PDQ service account",
        time="2025-03-06T12:44:50Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=f"{DOMAIN}\\svc-pdq",
        process=Proc(CMD, PDQ_CMD, sha("cmd 10.0.20348"), pid=5120),
        parent=PDQ_RUNNER,
        **agent
        | {
            "technique": ("TA0002", "Execution", "T1059.003", "Windows Command Shell"),
            "title": "Batch script executed by a service",
            "description": "cmd.exe ran a batch script on behalf of a service.",
        },
    )
    add(
        id="agent-azure-gc-01",
        vendor="ocsf",
        expected=BENIGN,
        reason="child of Azure Arc guest configuration gc_worker.exe in Program Files, signed",
        time="2025-03-07T06:00:31Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=SYSTEM,
        process=Proc(POWERSHELL, GC_PS, sha("powershell 10.0.20348"), MS, True, 4488),
        parent=GC_WORKER,
        **agent,
    )
    add(
        id="agent-mde-lr-01",
        vendor="crowdstrike",
        expected=BENIGN,
        reason="Defender for Endpoint live response (SenseIR.exe) running a PowerShell command",
        time="2025-03-10T14:20:45Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=Proc(POWERSHELL, SENSE_PS, sha("powershell 10.0.22621"), pid=7388),
        parent=SENSE_IR,
        **agent
        | {
            "title": "PowerShell started non-interactively by a service",
            "description": "PowerShell ran a command non-interactively under a service.",
        },
    )
    add(
        id="agent-jamf-02",
        vendor="elastic",
        expected=BENIGN,
        reason="shell spawned by the signed Jamf agent as root",
        time="2025-03-12T16:30:07Z",
        host="FAB-MBP-3310",
        host_ip="10.40.33.10",
        os="macos",
        user="root",
        process=Proc(
            "/bin/sh",
            "/bin/sh -c /usr/bin/defaults read /Library/Preferences/com.fabrikam.vpn",
            sha("sh 3.2.57"),
            "Software Signing",
            True,
            15440,
        ),
        parent=Proc(
            JAMF.path,
            JAMF.cmdline,
            JAMF.sha256,
            "Developer ID Application: JAMF Software (483DWKW443)",
            True,
            911,
        ),
        **agent
        | {
            "technique": SHELL_T,
            "title": "Shell spawned by a management daemon",
            "description": "A shell was spawned by a root daemon.",
        },
    )
    add(
        id="agent-sccm-02",
        vendor="defender",
        expected=BENIGN,
        reason="MSI install from ccmcache by the ConfigMgr client as SYSTEM",
        time="2025-03-11T09:00:20Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=Proc(
            "C:\\Windows\\System32\\msiexec.exe",
            'msiexec.exe /i "C:\\Windows\\ccmcache\\1f\\FabrikamVPN.msi" /qn REBOOT=ReallySuppress',
            sha("msiexec 5.0.22621"),
            MS,
            None,
            9100,
        ),
        parent=CCMEXEC,
        **agent
        | {
            "technique": ("TA0005", "Defense Evasion", "T1218.007", "Msiexec"),
            "title": "Silent MSI installation",
            "description": "msiexec installed a package silently.",
        },
    )
    add(
        id="agent-intune-02",
        vendor="wazuh",
        expected=BENIGN,
        reason="child of the Intune Management Extension AgentExecutor, as SYSTEM",
        time="2025-03-12T08:15:02Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=SYSTEM,
        process=Proc(POWERSHELL, IME_PS, sha("powershell 10.0.22621"), pid=6733),
        parent=IME,
        **agent,
    )
    add(
        id="agent-pdq-02",
        vendor="ocsf",
        expected=BENIGN,
        reason="PDQ Deploy runner (signed by PDQ.com) with the PDQ service account",
        time="2025-03-13T12:45:10Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\svc-pdq",
        process=Proc(
            POWERSHELL,
            'powershell.exe -NoProfile -ExecutionPolicy Bypass -File "C:\\Windows\\AdminArsenal\\PDQDeployRunner\\service-1\\exec\\user.ps1"',
            sha("powershell 10.0.20348"),
            MS,
            True,
            5230,
        ),
        parent=PDQ_RUNNER,
        **agent,
    )
    add(
        id="agent-office-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="same script launch, but by Word under a regular user",
        time="2025-03-04T11:07:55Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(POWERSHELL, CCM_PS, sha("powershell 10.0.22621"), MS, True, 8930),
        parent=Proc(
            WINWORD,
            '"WINWORD.EXE" /n "C:\\Users\\m.ivanova\\Downloads\\Q1-bonus.docm"',
            sha("WINWORD 16.0"),
            MS,
            True,
            8801,
        ),
        **agent,
    )
    add(
        id="agent-fake-intune-01",
        vendor="defender",
        expected=MALICIOUS,
        reason="parent named AgentExecutor.exe but in the user's temp folder, unsigned",
        time="2025-03-05T08:20:11Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        process=Proc(POWERSHELL, IME_PS, sha("powershell 10.0.22621"), MS, None, 6811),
        parent=user_proc(
            "C:\\Users\\r.osei\\AppData\\Local\\Temp\\AgentExecutor.exe",
            "AgentExecutor.exe -powershell",
            sha("fake AgentExecutor"),
            pid=6790,
        ),
        **agent,
    )
    add(
        id="agent-fake-jamf-01",
        vendor="sentinelone",
        expected=MALICIOUS,
        reason="parent named jamf but in the user's Downloads folder, run by the user",
        time="2025-03-05T16:41:29Z",
        host="FAB-MBP-3310",
        host_ip="10.40.33.10",
        os="macos",
        user="t.nguyen",
        process=Proc("/bin/bash", JAMF_SH, sha("bash 3.2.57"), pid=15390),
        parent=user_proc(
            "/Users/t.nguyen/Downloads/jamf",
            "/Users/t.nguyen/Downloads/jamf policy -event daily",
            sha("fake jamf"),
            pid=15377,
        ),
        **agent
        | {
            "technique": SHELL_T,
            "title": "Shell script executed from a temporary folder",
            "description": "A shell script ran from a temporary folder as root.",
        },
    )
    add(
        id="agent-fake-pdq-01",
        vendor="wazuh",
        expected=MALICIOUS,
        reason="PDQ-named runner in a user temp folder on a workstation, regular user",
        time="2025-03-06T22:14:03Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(CMD, PDQ_CMD, sha("cmd 10.0.22621"), pid=9230),
        parent=user_proc("C:\\Users\\t.nguyen\\AppData\\Local\\Temp\\PDQDeployRunner-1.exe", pid=9201),
        **agent
        | {
            "technique": ("TA0002", "Execution", "T1059.003", "Windows Command Shell"),
            "title": "Batch script executed by a service",
            "description": "cmd.exe ran a batch script on behalf of a service.",
        },
    )
    add(
        id="agent-fake-sense-01",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="parent named SenseIR.exe in C:\\ProgramData (user-writable), hash known malicious",
        time="2025-03-10T03:02:45Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=Proc(POWERSHELL, SENSE_PS, sha("powershell 10.0.22621"), pid=7490),
        parent=user_proc(
            "C:\\ProgramData\\SenseIR.exe",
            '"C:\\ProgramData\\SenseIR.exe" "OnlineSenseIR"',
            sha("fake SenseIR"),
            pid=7450,
        ),
        **agent
        | {
            "title": "PowerShell started non-interactively by a service",
            "description": "PowerShell ran a command non-interactively under a service.",
        },
    )
    add(
        id="agent-office-02",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="same guest-configuration-style script, launched by Excel under a regular user",
        time="2025-03-07T10:33:12Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(POWERSHELL, GC_PS, sha("powershell 10.0.22621"), MS, True, 9444),
        parent=Proc(
            EXCEL,
            '"EXCEL.EXE" "C:\\Users\\m.ivanova\\Downloads\\supplier-prices.xlsm"',
            sha("EXCEL 16.0"),
            MS,
            True,
            9400,
        ),
        **agent,
    )

    # --- LSASS access: AV and backup engines vs dumpers ------------------------------------------------
    lsass = {
        "activity": "lsass-access",
        "title": "Process accessed LSASS memory",
        "description": "A process opened lsass.exe with rights to read its memory, as credential dumpers do.",
        "technique": LSASS_T,
        "severity": "high",
    }
    add(
        id="lsass-defender-av-01",
        vendor="elastic",
        expected=MISFIRE,
        reason="Microsoft Defender engine in its platform folder, signed, as SYSTEM",
        time="2025-03-04T07:45:10Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=MSMPENG,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-veeam-01",
        vendor="crowdstrike",
        expected=MISFIRE,
        reason="Veeam agent in Program Files under the backup service account on a backed-up server",
        time="2025-03-04T23:00:41Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\svc-veeam",
        process=VEEAM,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-sysmon-01",
        vendor="sentinelone",
        expected=MISFIRE,
        reason="Sysmon service binary in C:\\Windows, as SYSTEM",
        time="2025-03-05T04:10:00Z",
        host="FAB-FS-03",
        host_ip="10.40.20.33",
        user=SYSTEM,
        process=SYSMON,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-mbam-01",
        vendor="defender",
        expected=MISFIRE,
        reason="Malwarebytes service in Program Files, as SYSTEM",
        time="2025-03-05T12:00:31Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=SYSTEM,
        process=MBAM,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-veeam-02",
        vendor="ocsf",
        expected=MISFIRE,
        reason="Veeam agent in Program Files, signed, backup service account",
        time="2025-03-06T23:00:12Z",
        host="FAB-BKP-01",
        host_ip="10.40.6.10",
        user=f"{DOMAIN}\\svc-veeam",
        process=VEEAM,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-mcafee-01",
        vendor="elastic",
        expected=MISFIRE,
        reason="McAfee scanning host service in Program Files, signed, as SYSTEM",
        time="2025-03-07T09:12:44Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=MCAFEE,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-defender-av-02",
        vendor="crowdstrike",
        expected=MISFIRE,
        reason="Microsoft Defender engine in its platform folder, as SYSTEM",
        time="2025-03-10T07:46:02Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=MSMPENG,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-sysmon-02",
        vendor="defender",
        expected=MISFIRE,
        reason="Sysmon service binary in C:\\Windows, signed, as SYSTEM",
        time="2025-03-11T04:10:03Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=SYSTEM,
        process=SYSMON,
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-procdump-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="procdump (validly signed) run from C:\\Users\\Public by a regular user against lsass",
        time="2025-03-04T21:03:22Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(
            "C:\\Users\\Public\\procdump64.exe", PROCDUMP_CMD, sha("procdump64 11.0"), MS, True, 10212
        ),
        parent=Proc(CMD, "cmd.exe", pid=10100),
        **lsass,
    )
    add(
        id="lsass-comsvcs-01",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="rundll32 comsvcs.dll MiniDump launched by PowerShell under a regular user",
        time="2025-03-07T02:55:08Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(
            "C:\\Windows\\System32\\rundll32.exe",
            "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 712 C:\\Windows\\Temp\\d.bin full",
            sha("rundll32 10.0.22621"),
            pid=9333,
        ),
        parent=Proc(POWERSHELL, "powershell.exe", pid=9300),
        **lsass,
    )
    add(
        id="lsass-fake-sysmon-01",
        vendor="sentinelone",
        expected=MALICIOUS,
        reason="Sysmon64.exe in C:\\Users\\Public, hash known malicious",
        time="2025-03-05T04:12:19Z",
        host="FAB-FS-03",
        host_ip="10.40.20.33",
        user=SYSTEM,
        process=user_proc(
            "C:\\Users\\Public\\Sysmon64.exe",
            "C:\\Users\\Public\\Sysmon64.exe",
            sha("fake Sysmon64"),
            pid=6102,
        ),
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-fake-mbam-01",
        vendor="defender",
        expected=MALICIOUS,
        reason="MBAMService.exe in C:\\ProgramData, unsigned, hash known malicious",
        time="2025-03-05T12:03:40Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=SYSTEM,
        process=user_proc(
            "C:\\ProgramData\\Malwarebytes\\MBAMService.exe",
            '"C:\\ProgramData\\Malwarebytes\\MBAMService.exe"',
            sha("fake MBAMService"),
            pid=6210,
        ),
        parent=SERVICES,
        **lsass,
    )
    add(
        id="lsass-fake-veeam-01",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="backup service account, but the binary is in C:\\ProgramData and unsigned",
        time="2025-03-06T23:04:55Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\svc-veeam",
        process=user_proc(
            "C:\\ProgramData\\Veeam\\Veeam.EndPoint.Service.exe",
            '"C:\\ProgramData\\Veeam\\Veeam.EndPoint.Service.exe"',
            sha("fake Veeam"),
            pid=6300,
        ),
        parent=SERVICES,
        **lsass,
    )

    # --- vulnerability scanner logons vs brute force ---------------------------------------------------
    logon = {
        "activity": "scanner-logons",
        "title": "Multiple failed logons from one source",
        "description": "One source failed to authenticate many times in a short period.",
        "technique": LOGON_T,
        "severity": "medium",
    }
    scan = f"{DOMAIN}\\svc-vulnscan"
    add(
        id="scan-logon-01",
        vendor="wazuh",
        expected=BENIGN,
        reason="scanner appliance FAB-SCAN-01, scanner account, inside the Saturday scan window",
        time="2025-03-08T01:14:33Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=scan,
        src_ip=SCANNER[1],
        event_id=4625,
        logon_type=3,
        **logon,
    )
    add(
        id="scan-logon-02",
        vendor="wazuh",
        expected=BENIGN,
        reason="scanner appliance, scanner account, inside the scan window",
        time="2025-03-08T02:40:08Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=scan,
        src_ip=SCANNER[1],
        event_id=4624,
        logon_type=3,
        **logon
        | {
            "title": "Network logon by a service account to many hosts",
            "description": "A service account logged on over the network to many hosts.",
            "technique": ("TA0001", "Initial Access", "T1078.002", "Domain Accounts"),
        },
    )
    add(
        id="scan-logon-03",
        vendor="wazuh",
        expected=BENIGN,
        reason="SSH authentication failures from the scanner appliance in the scan window",
        time="2025-03-15T01:05:51Z",
        host="FAB-WEB-04",
        host_ip="10.40.21.4",
        os="linux",
        user="svc-vulnscan",
        src_ip=SCANNER[1],
        **logon,
    )
    add(
        id="scan-logon-04",
        vendor="elastic",
        expected=BENIGN,
        reason="scanner appliance, scanner account, in the scan window",
        time="2025-03-15T02:30:19Z",
        host="FAB-FS-03",
        host_ip="10.40.20.33",
        user=scan,
        src_ip=SCANNER[1],
        **logon,
    )
    add(
        id="scan-logon-05",
        vendor="ocsf",
        expected=BENIGN,
        reason="scanner appliance, scanner account, in the scan window",
        time="2025-03-22T00:30:02Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=scan,
        src_ip=SCANNER[1],
        **logon,
    )
    add(
        id="scan-logon-06",
        vendor="sentinelone",
        expected=BENIGN,
        reason="scanner appliance, scanner account, in the scan window",
        time="2025-03-22T03:10:47Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=scan,
        src_ip=SCANNER[1],
        **logon,
    )
    add(
        id="bruteforce-01",
        vendor="wazuh",
        expected=MALICIOUS,
        reason="failed administrator logons from workstation FAB-WS-1107, not the scanner",
        time="2025-03-08T01:20:12Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\administrator",
        src_ip="10.40.31.107",
        event_id=4625,
        logon_type=3,
        **logon,
    )
    add(
        id="bruteforce-02",
        vendor="wazuh",
        expected=MALICIOUS,
        reason="SSH root guessing from an address the intel file lists as malicious",
        time="2025-03-15T01:07:40Z",
        host="FAB-WEB-04",
        host_ip="10.40.21.4",
        os="linux",
        user="root",
        src_ip="203.0.113.250",
        **logon,
    )
    add(
        id="bruteforce-03",
        vendor="elastic",
        expected=MALICIOUS,
        reason="scanner account used from workstation FAB-WS-1042, not the scanner appliance",
        time="2025-03-18T13:02:10Z",
        host="FAB-FS-03",
        host_ip="10.40.20.33",
        user=scan,
        src_ip="10.40.30.42",
        **logon,
    )
    add(
        id="bruteforce-04",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="scanner appliance and account, but on a Tuesday afternoon, outside any scan window",
        time="2025-03-18T13:05:44Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=scan,
        src_ip=SCANNER[1],
        **logon,
    )

    # --- vendor updaters vs droppers in user-writable folders ------------------------------------------
    update = {
        "activity": "updater",
        "title": "Executable downloaded and started by an update process",
        "description": "A process downloaded an executable and started it, as droppers do.",
        "technique": UPDATE_T,
        "severity": "medium",
    }
    add(
        id="update-google-01",
        vendor="elastic",
        expected=MISFIRE,
        reason="Google Update in Program Files (x86), validly signed by Google LLC, started by the task scheduler",
        time="2025-03-04T10:31:07Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=Proc(GOOGLE_UPDATE, GOOGLE_UPDATE_CMD, sha("GoogleUpdate 1.3.36"), "Google LLC", True, 7010),
        parent=SCHEDULER,
        **update,
    )
    add(
        id="update-edge-01",
        vendor="crowdstrike",
        expected=MISFIRE,
        reason="Edge Update in Program Files (x86), hash known good, started by the task scheduler",
        time="2025-03-05T10:32:48Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=Proc(EDGE_UPDATE, EDGE_UPDATE_CMD, sha("MicrosoftEdgeUpdate 1.3.195"), pid=7020),
        parent=SCHEDULER,
        **update,
    )
    add(
        id="update-office-01",
        vendor="sentinelone",
        expected=MISFIRE,
        reason="Office Click-to-Run update binary in Program Files, validly signed by Microsoft",
        time="2025-03-06T03:15:00Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=SYSTEM,
        file=Proc(C2R, None, sha("OfficeClickToRun 16.0.18129"), MS, True),
        parent=Proc("C:\\Program Files\\Common Files\\microsoft shared\\ClickToRun\\OfficeC2RClient.exe"),
        **update
        | {
            "title": "Suspicious executable written to disk",
            "description": "A new executable was written and flagged by the behavioural engine.",
        },
    )
    add(
        id="update-adobe-01",
        vendor="defender",
        expected=MISFIRE,
        reason="Adobe ARM updater in Program Files (x86), signed by Adobe, hash known good",
        time="2025-03-06T11:02:33Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=SYSTEM,
        process=Proc(ADOBE_ARM, f'"{ADOBE_ARM}"', sha("AdobeARM 1.824"), "Adobe Inc.", None, 7122),
        parent=SCHEDULER,
        **update,
    )
    add(
        id="update-dropbox-01",
        vendor="ocsf",
        expected=MISFIRE,
        reason="Dropbox Update in Program Files (x86), validly signed",
        time="2025-03-07T09:40:15Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=Proc(
            DROPBOX_UPDATE,
            f'"{DROPBOX_UPDATE}" /ua /installsource scheduler',
            sha("DropboxUpdate 1.3.27"),
            "Dropbox, Inc",
            True,
            7230,
        ),
        parent=SCHEDULER,
        **update,
    )
    add(
        id="update-firefox-01",
        vendor="wazuh",
        expected=MISFIRE,
        reason="Firefox's own updater in Program Files launched by firefox.exe",
        time="2025-03-10T15:05:42Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(
            FIREFOX_UPDATER, f'"{FIREFOX_UPDATER}" --staged-update', sha("firefox updater 135"), pid=8300
        ),
        parent=FIREFOX,
        **update,
    )
    add(
        id="update-google-mac-01",
        vendor="elastic",
        expected=MISFIRE,
        reason="Google Software Update agent in /Library, validly signed by Google LLC",
        time="2025-03-11T09:00:03Z",
        host="FAB-MBP-3310",
        host_ip="10.40.33.10",
        os="macos",
        user="t.nguyen",
        process=Proc(
            "/Library/Google/GoogleSoftwareUpdate/GoogleSoftwareUpdate.bundle/Contents/Helpers/GoogleSoftwareUpdateAgent.app/Contents/MacOS/GoogleSoftwareUpdateAgent",
            "GoogleSoftwareUpdateAgent -runMode oneshot -userInitiated NO",
            sha("GoogleSoftwareUpdateAgent 1.3"),
            "Developer ID Application: Google LLC (EQHXZ8M8AV)",
            True,
            16200,
        ),
        parent=Proc("/sbin/launchd", "/sbin/launchd", pid=1),
        **update,
    )
    add(
        id="update-onedrive-01",
        vendor="sentinelone",
        expected=MISFIRE,
        reason="OneDrive standalone updater in Program Files, signed by Microsoft",
        time="2025-03-12T10:05:19Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(ONEDRIVE, f'"{ONEDRIVE}" /update /restart', sha("OneDriveSetup 25.020"), MS, None, 8420),
        parent=SCHEDULER,
        **update,
    )
    add(
        id="dropper-google-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="GoogleUpdate.exe in the user's temp folder, unsigned, hash known malicious",
        time="2025-03-04T10:33:50Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(
            "C:\\Users\\m.ivanova\\AppData\\Local\\Temp\\GoogleUpdate.exe",
            GOOGLE_UPDATE_CMD,
            sha("dropper GoogleUpdate"),
            None,
            False,
            7500,
        ),
        parent=EXPLORER,
        **update,
    )
    add(
        id="dropper-edge-01",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="MicrosoftEdgeUpdate.exe in C:\\Users\\Public, hash known malicious",
        time="2025-03-05T22:41:12Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=user_proc(
            "C:\\Users\\Public\\MicrosoftEdgeUpdate.exe", EDGE_UPDATE_CMD, sha("dropper EdgeUpdate"), pid=7601
        ),
        parent=SCHEDULER,
        **update,
    )
    add(
        id="dropper-office-01",
        vendor="sentinelone",
        expected=MALICIOUS,
        reason="OfficeClickToRun.exe in the user's roaming profile, certificate invalid, hash known malicious",
        time="2025-03-06T03:17:45Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        file=Proc(
            "C:\\Users\\r.osei\\AppData\\Roaming\\Microsoft\\ClickToRun\\OfficeClickToRun.exe",
            None,
            sha("dropper OfficeClickToRun"),
            MS,
            False,
        ),
        parent=Proc("C:\\Users\\r.osei\\AppData\\Roaming\\Microsoft\\ClickToRun\\OfficeC2RClient.exe"),
        **update
        | {
            "title": "Suspicious executable written to disk",
            "description": "A new executable was written and flagged by the behavioural engine.",
        },
    )
    add(
        id="dropper-adobe-01",
        vendor="defender",
        expected=MALICIOUS,
        reason="AdobeARM.exe in the user's Downloads folder, hash known malicious",
        time="2025-03-06T11:09:02Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        process=Proc(
            "C:\\Users\\r.osei\\Downloads\\AdobeARM.exe",
            '"C:\\Users\\r.osei\\Downloads\\AdobeARM.exe"',
            sha("dropper AdobeARM"),
            "Adobe Inc.",
            None,
            7700,
        ),
        parent=EXPLORER,
        **update,
    )
    add(
        id="dropper-dropbox-01",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="DropboxUpdate.exe in C:\\ProgramData with a signature that does not validate",
        time="2025-03-07T09:44:31Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(
            "C:\\ProgramData\\Dropbox\\Update\\DropboxUpdate.exe",
            '"C:\\ProgramData\\Dropbox\\Update\\DropboxUpdate.exe" /ua /installsource scheduler',
            sha("dropper DropboxUpdate"),
            "Dropbox, Inc",
            False,
            7802,
        ),
        parent=SCHEDULER,
        **update,
    )

    # --- developer tools and CI vs the same commands elsewhere -----------------------------------------
    dev = {"activity": "developer-tools", "severity": "medium"}
    curl_pipe = dev | {
        "title": "Script downloaded and piped into a shell",
        "description": "curl output was piped into a shell interpreter.",
        "technique": SHELL_T,
    }
    rustup = dev | {
        "title": "Remote script downloaded to /tmp",
        "description": "A script was downloaded into /tmp with curl.",
        "technique": UPDATE_T,
    }
    build = dev | {
        "title": "MSBuild compiled and ran a project",
        "description": "MSBuild built a project, which can run inline tasks.",
        "technique": BUILD_T,
    }
    compile_ = dev | {
        "title": "C# compiler started by a build process",
        "description": "csc.exe compiled code from a response file.",
        "technique": ("TA0005", "Defense Evasion", "T1027.004", "Compile After Delivery"),
    }
    vs = dev | {
        "title": "Installer run with elevated rights",
        "description": "An installer ran elevated and installed software.",
        "technique": ("TA0002", "Execution", "T1204.002", "Malicious File"),
    }
    add(
        id="ci-nodesource-01",
        vendor="elastic",
        expected=BENIGN,
        reason="CI runner host, gitlab-runner account, started by /usr/bin/gitlab-runner",
        time="2025-03-04T14:12:09Z",
        host="fab-ci-runner-02",
        host_ip="10.40.40.12",
        os="linux",
        user="gitlab-runner",
        process=Proc("/usr/bin/bash", NODESOURCE, sha("bash 5.1"), pid=20110),
        parent=GITLAB_RUNNER,
        **curl_pipe,
    )
    add(
        id="ci-rustup-01",
        vendor="wazuh",
        expected=BENIGN,
        reason="CI runner host, gitlab-runner account",
        time="2025-03-05T14:30:44Z",
        host="fab-ci-runner-01",
        host_ip="10.40.40.11",
        os="linux",
        user="gitlab-runner",
        process=Proc("/usr/bin/curl", RUSTUP, sha("curl 7.81"), pid=20230),
        **rustup,
    )
    add(
        id="ci-msbuild-01",
        vendor="ocsf",
        expected=BENIGN,
        reason="build agent FAB-BUILD-02 with the build service account, MSBuild from Visual Studio Build Tools",
        time="2025-03-06T15:20:00Z",
        host="FAB-BUILD-02",
        host_ip="10.40.40.22",
        user=f"{DOMAIN}\\svc-build",
        process=Proc(MSBUILD, MSBUILD_CMD, sha("MSBuild 17.12"), MS, True, 4512),
        parent=AZDO_AGENT,
        **build,
    )
    add(
        id="ci-csc-01",
        vendor="crowdstrike",
        expected=BENIGN,
        reason="build agent FAB-BUILD-02, build service account, parent MSBuild in Visual Studio Build Tools",
        time="2025-03-06T15:20:31Z",
        host="FAB-BUILD-02",
        host_ip="10.40.40.22",
        user=f"{DOMAIN}\\svc-build",
        process=Proc(CSC, CSC_CMD, sha("csc 4.8.9032"), pid=4620),
        parent=Proc(MSBUILD, MSBUILD_CMD, sha("MSBuild 17.12"), pid=4512),
        **compile_,
    )
    add(
        id="dev-vsinstaller-01",
        vendor="defender",
        expected=BENIGN,
        reason="Visual Studio Installer in Program Files (x86), signed by Microsoft, hash known good",
        time="2025-03-07T13:01:12Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\adm-okoch",
        process=Proc(VS_SETUP, VS_SETUP_CMD, sha("VS setup 3.12"), MS, None, 6020),
        parent=Proc(
            "C:\\Program Files (x86)\\Microsoft Visual Studio\\Installer\\vs_installer.exe",
            "vs_installer.exe",
            sha("vs_installer 3.12"),
            MS,
            None,
            6001,
        ),
        **vs,
    )
    add(
        id="ci-pip-01",
        vendor="sentinelone",
        expected=BENIGN,
        reason="CI runner host, gitlab-runner account, started by gitlab-runner",
        time="2025-03-10T11:45:36Z",
        host="fab-ci-runner-03",
        host_ip="10.40.40.13",
        os="linux",
        user="gitlab-runner",
        process=Proc("/usr/bin/bash", NODESOURCE, sha("bash 5.1"), pid=20400),
        parent=GITLAB_RUNNER,
        **curl_pipe,
    )
    add(
        id="web-nodesource-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="same command on web server FAB-WEB-04 under www-data, spawned by Apache",
        time="2025-03-04T14:40:55Z",
        host="FAB-WEB-04",
        host_ip="10.40.21.4",
        os="linux",
        user="www-data",
        process=Proc("/usr/bin/bash", NODESOURCE, sha("bash 5.1"), pid=31022),
        parent=APACHE,
        **curl_pipe,
    )
    add(
        id="web-rustup-01",
        vendor="wazuh",
        expected=MALICIOUS,
        reason="same download on web server FAB-WEB-04 under www-data",
        time="2025-03-05T03:12:09Z",
        host="FAB-WEB-04",
        host_ip="10.40.21.4",
        os="linux",
        user="www-data",
        process=Proc("/usr/bin/curl", RUSTUP, sha("curl 7.81"), pid=31100),
        **rustup,
    )
    add(
        id="ws-msbuild-01",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="the .NET Framework MSBuild started from Explorer by a regular user on a workstation",
        time="2025-03-06T19:22:40Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(
            "C:\\Windows\\Microsoft.NET\\Framework64\\v4.0.30319\\MSBuild.exe",
            MSBUILD_CMD,
            sha("MSBuild 4.8"),
            MS,
            True,
            9510,
        ),
        parent=EXPLORER,
        **build,
    )
    add(
        id="ws-csc-01",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="parent MSBuild.exe in the user's temp folder on a workstation",
        time="2025-03-06T19:25:03Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(CSC, CSC_CMD, sha("csc 4.8.9032"), pid=9630),
        parent=user_proc(
            "C:\\Users\\m.ivanova\\AppData\\Local\\Temp\\MSBuild.exe",
            MSBUILD_CMD,
            sha("fake MSBuild"),
            pid=9601,
        ),
        **compile_,
    )
    add(
        id="ws-fake-vsinstaller-01",
        vendor="defender",
        expected=MALICIOUS,
        reason="setup.exe in the user's Downloads folder, hash known malicious",
        time="2025-03-07T13:20:44Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        process=Proc(
            "C:\\Users\\r.osei\\Downloads\\vs_setup\\setup.exe",
            VS_SETUP_CMD,
            sha("fake VS setup"),
            MS,
            None,
            7920,
        ),
        parent=EXPLORER,
        **vs,
    )

    # --- sanctioned remote support vs unsanctioned remote-management tools -----------------------------
    rmm = {
        "activity": "remote-support",
        "title": "Remote access tool running",
        "description": "A remote monitoring and management tool started and connected to its relay.",
        "technique": RMM_T,
        "severity": "medium",
    }
    sc_windows = Proc(
        f"{SC_ROOT}\\ScreenConnect.WindowsClient.exe",
        f'"{SC_ROOT}\\ScreenConnect.WindowsClient.exe" "RunRole" "8d2c" "User"',
        sha("ScreenConnect.WindowsClient 24.3"),
        CONNECTWISE,
        True,
        3611,
    )
    add(
        id="rmm-screenconnect-01",
        vendor="elastic",
        expected=BENIGN,
        reason="the helpdesk's own ScreenConnect instance, validly signed by ConnectWise",
        time="2025-03-04T10:05:00Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=SC_SERVICE,
        parent=SERVICES,
        **rmm,
    )
    add(
        id="rmm-screenconnect-02",
        vendor="crowdstrike",
        expected=BENIGN,
        reason="the helpdesk's own ScreenConnect instance folder, as SYSTEM",
        time="2025-03-05T11:22:18Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=Proc(SC_SERVICE.path, SC_SERVICE.cmdline, SC_SERVICE.sha256, pid=3560),
        parent=SERVICES,
        **rmm,
    )
    add(
        id="rmm-screenconnect-03",
        vendor="sentinelone",
        expected=BENIGN,
        reason="the helpdesk's own ScreenConnect instance, as SYSTEM",
        time="2025-03-06T09:40:02Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=SYSTEM,
        process=SC_SERVICE,
        parent=SERVICES,
        **rmm,
    )
    add(
        id="rmm-screenconnect-04",
        vendor="defender",
        expected=BENIGN,
        reason="the helpdesk's own ScreenConnect instance, as SYSTEM",
        time="2025-03-07T15:12:45Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=SYSTEM,
        process=SC_SERVICE,
        parent=SERVICES,
        **rmm,
    )
    add(
        id="rmm-screenconnect-05",
        vendor="ocsf",
        expected=BENIGN,
        reason="the helpdesk's ScreenConnect session client, child of its service, validly signed",
        time="2025-03-10T10:01:30Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=SYSTEM,
        process=sc_windows,
        parent=SC_SERVICE,
        **rmm,
    )
    add(
        id="rmm-screenconnect-06",
        vendor="wazuh",
        expected=BENIGN,
        reason="command run through the helpdesk's ScreenConnect service",
        time="2025-03-11T13:33:27Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=Proc(
            CMD,
            'cmd.exe /c "C:\\Windows\\TEMP\\ScreenConnect\\24.3.7.9067\\run.cmd"',
            sha("cmd 10.0.22621"),
            pid=3720,
        ),
        parent=SC_SERVICE,
        **rmm
        | {
            "title": "Command shell started by a remote access tool",
            "description": "A remote access tool's service started cmd.exe.",
        },
    )
    add(
        id="rmm-anydesk-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="AnyDesk (not sanctioned) run from the user's Downloads folder",
        time="2025-03-04T18:22:11Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(
            "C:\\Users\\m.ivanova\\Downloads\\AnyDesk.exe",
            '"C:\\Users\\m.ivanova\\Downloads\\AnyDesk.exe"',
            sha("AnyDesk 9.0.4"),
            "AnyDesk Software GmbH",
            True,
            8020,
        ),
        parent=EXPLORER,
        **rmm,
    )
    add(
        id="rmm-rogue-screenconnect-01",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="ScreenConnect from another instance than the helpdesk's (other client folder)",
        time="2025-03-05T23:40:09Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=SYSTEM,
        process=Proc(
            f"{SC_ROGUE}\\ScreenConnect.ClientService.exe",
            SC_CMD.format(root=SC_ROGUE),
            sha("ScreenConnect.ClientService 23.9"),
            pid=3580,
        ),
        parent=SERVICES,
        **rmm,
    )
    add(
        id="rmm-atera-01",
        vendor="sentinelone",
        expected=MALICIOUS,
        reason="Atera agent: a remote-management tool Fabrikam does not use",
        time="2025-03-06T22:05:51Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=SYSTEM,
        process=Proc(
            "C:\\Program Files\\ATERA Networks\\AteraAgent\\AteraAgent.exe",
            '"C:\\Program Files\\ATERA Networks\\AteraAgent\\AteraAgent.exe"',
            sha("AteraAgent 1.8"),
            "Atera Networks Ltd",
            None,
            4030,
        ),
        parent=SERVICES,
        **rmm,
    )
    add(
        id="rmm-rogue-screenconnect-02",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="ScreenConnect client run from the user's profile under a regular user",
        time="2025-03-10T21:14:37Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        process=Proc(
            "C:\\Users\\r.osei\\AppData\\Local\\Apps\\2.0\\QX4K2B1V.P0Z\\ScreenConnect.WindowsClient.exe",
            '"ScreenConnect.WindowsClient.exe" "RunRole" "8d2c" "User"',
            sha("ScreenConnect.WindowsClient 23.9"),
            CONNECTWISE,
            True,
            8801,
        ),
        parent=EXPLORER,
        **rmm,
    )

    # --- phishing simulation vs real phishing ----------------------------------------------------------
    phish = {
        "activity": "phishing",
        "title": "User clicked a link in a suspicious email",
        "description": "A user opened a link from an email that impersonates the IT helpdesk.",
        "technique": PHISH_T,
        "severity": "medium",
    }
    sim_from = "it-helpdesk@phishsim-training.example"
    add(
        id="phish-sim-01",
        vendor="ocsf",
        expected=BENIGN,
        reason="sent from the simulation vendor's addresses, landing page on the simulation domain",
        time="2025-03-04T08:41:12Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        src_ip="198.51.100.163",
        url="https://login.phishsim-training.example/c/8f2a?u=m.ivanova",
        sender=sim_from,
        **phish,
    )
    add(
        id="phish-sim-02",
        vendor="ocsf",
        expected=BENIGN,
        reason="simulation sender IP and landing domain",
        time="2025-03-04T09:03:55Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        src_ip="198.51.100.165",
        url="https://login.phishsim-training.example/c/8f2a?u=t.nguyen",
        sender=sim_from,
        **phish,
    )
    add(
        id="phish-sim-03",
        vendor="defender",
        expected=BENIGN,
        reason="landing page on the simulation domain",
        time="2025-03-04T10:12:31Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        url="https://docs.phishsim-training.example/share/Q1-bonus?id=r.osei",
        **phish,
    )
    add(
        id="phish-sim-04",
        vendor="defender",
        expected=BENIGN,
        reason="tracking link on the simulation domain",
        time="2025-03-04T11:20:09Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\d.kim",
        url="https://track.phishsim-training.example/o/5521?u=d.kim",
        **phish,
    )
    add(
        id="phish-sim-05",
        vendor="elastic",
        expected=BENIGN,
        reason="simulation sender IP and landing domain",
        time="2025-03-04T12:02:47Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\l.meyer",
        src_ip="198.51.100.161",
        url="https://login.phishsim-training.example/c/8f2a?u=l.meyer",
        **phish,
    )
    add(
        id="phish-sim-06",
        vendor="ocsf",
        expected=BENIGN,
        reason="simulation sender IP and landing domain",
        time="2025-03-05T08:15:40Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        src_ip="198.51.100.170",
        url="https://login.phishsim-training.example/c/8f2a?u=r.osei",
        sender=sim_from,
        **phish,
    )
    add(
        id="phish-real-01",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="look-alike domain and a sender IP outside the simulation range; the From address is forged",
        time="2025-03-06T08:44:02Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        src_ip="203.0.113.250",
        url="https://login.phishsim-training.example.account-verify.example/c/8f2a?u=m.ivanova",
        sender=sim_from,
        **phish,
    )
    add(
        id="phish-real-02",
        vendor="defender",
        expected=MALICIOUS,
        reason="look-alike domain (hyphen instead of dot)",
        time="2025-03-06T10:19:11Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        url="https://docs.phishsim-training-example.com/share/Q1-bonus?id=r.osei",
        **phish,
    )
    add(
        id="phish-real-03",
        vendor="elastic",
        expected=MALICIOUS,
        reason="sender IP outside the simulation range, landing page on another domain",
        time="2025-03-06T12:05:30Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\l.meyer",
        src_ip="192.0.2.77",
        url="https://login.phishsim-training.example.evil-cdn.example/c/8f2a?u=l.meyer",
        **phish,
    )
    add(
        id="phish-real-04",
        vendor="ocsf",
        expected=MALICIOUS,
        reason="sender IP outside the simulation range, look-alike landing domain",
        time="2025-03-07T08:15:55Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\d.kim",
        src_ip="192.0.2.78",
        url="https://docs-phishsim-training.example/share/Q1-bonus?id=d.kim",
        sender=sim_from,
        **phish,
    )

    # --- service installs in the patch window vs persistence -------------------------------------------
    service = {
        "activity": "service-install",
        "title": "New service created with sc.exe",
        "description": "sc.exe created an auto-start service.",
        "technique": SERVICE_T,
        "severity": "medium",
    }
    sc_proc = Proc("C:\\Windows\\System32\\sc.exe", SC_INSTALL, sha("sc 10.0.20348"), pid=5522)
    add(
        id="change-service-01",
        vendor="wazuh",
        expected=BENIGN,
        reason="ConfigMgr client as SYSTEM on a server, inside the Tuesday patch window",
        time="2025-03-11T20:35:10Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=SYSTEM,
        process=sc_proc,
        parent=CCMEXEC,
        **service,
    )
    add(
        id="change-service-02",
        vendor="elastic",
        expected=BENIGN,
        reason="ConfigMgr client as SYSTEM on a server, inside the patch window",
        time="2025-03-11T21:02:44Z",
        host="FAB-APP-07",
        host_ip="10.40.20.27",
        user=SYSTEM,
        process=sc_proc,
        parent=CCMEXEC,
        **service,
    )
    add(
        id="change-service-03",
        vendor="crowdstrike",
        expected=BENIGN,
        reason="ConfigMgr client as SYSTEM on a server, inside the patch window",
        time="2025-03-11T20:50:31Z",
        host="FAB-FS-03",
        host_ip="10.40.20.33",
        user=SYSTEM,
        process=sc_proc,
        parent=CCMEXEC,
        **service,
    )
    add(
        id="change-service-04",
        vendor="ocsf",
        expected=BENIGN,
        reason="ConfigMgr client as SYSTEM on a server, inside the patch window",
        time="2025-03-11T21:30:05Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=SYSTEM,
        process=sc_proc,
        parent=CCMEXEC,
        **service,
    )
    add(
        id="persist-service-01",
        vendor="elastic",
        expected=MALICIOUS,
        reason="same command from cmd.exe by a regular user on a workstation, on a Saturday night",
        time="2025-03-08T02:12:10Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=sc_proc,
        parent=Proc(CMD, "cmd.exe", pid=9900),
        **service,
    )
    add(
        id="persist-service-02",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="same command on a server, but from cmd.exe by a regular user outside the patch window",
        time="2025-03-13T02:10:44Z",
        host="FAB-SQL-02",
        host_ip="10.40.20.12",
        user=f"{DOMAIN}\\m.ivanova",
        process=sc_proc,
        parent=Proc(CMD, "cmd.exe", pid=9910),
        **service,
    )

    # --- internal software vs a trojanized copy ---------------------------------------------------------
    capture = {
        "activity": "internal-software",
        "title": "Process installed a keyboard hook",
        "description": "A process registered a low-level keyboard hook, as keyloggers do.",
        "technique": CAPTURE_T,
        "severity": "high",
    }
    label = Proc(LABEL, f'"{LABEL}" --printer LBL-02', LABEL_SHA, "Fabrikam Ltd", True, 6400)
    add(
        id="internal-label-01",
        vendor="elastic",
        expected=MISFIRE,
        reason="Fabrikam's own LabelStudio: expected path, signer and hash",
        time="2025-03-04T08:05:12Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=label,
        parent=EXPLORER,
        **capture,
    )
    add(
        id="internal-label-02",
        vendor="sentinelone",
        expected=MISFIRE,
        reason="Fabrikam's own LabelStudio: expected path, valid signer and hash",
        time="2025-03-05T08:10:40Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        file=label,
        parent=EXPLORER,
        **capture
        | {
            "title": "Suspicious keyboard hook in a new executable",
            "description": "The behavioural engine flagged a keyboard hook.",
        },
    )
    add(
        id="internal-label-03",
        vendor="crowdstrike",
        expected=MISFIRE,
        reason="Fabrikam's own LabelStudio: expected path and hash",
        time="2025-03-06T08:01:03Z",
        host="FAB-WS-1107",
        host_ip="10.40.31.107",
        user=f"{DOMAIN}\\t.nguyen",
        process=Proc(LABEL, label.cmdline, LABEL_SHA, pid=6410),
        parent=EXPLORER,
        **capture,
    )
    add(
        id="internal-label-04",
        vendor="ocsf",
        expected=MISFIRE,
        reason="Fabrikam's own LabelStudio: expected path, signer and hash",
        time="2025-03-07T08:03:30Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\d.kim",
        process=label,
        parent=EXPLORER,
        **capture,
    )
    add(
        id="internal-trojan-01",
        vendor="crowdstrike",
        expected=MALICIOUS,
        reason="LabelStudio at its usual path but with another hash, which intel lists as malicious",
        time="2025-03-06T08:04:41Z",
        host="FAB-WS-1042",
        host_ip="10.40.30.42",
        user=f"{DOMAIN}\\m.ivanova",
        process=Proc(LABEL, label.cmdline, sha("trojanized LabelStudio"), pid=6420),
        parent=EXPLORER,
        **capture,
    )
    add(
        id="internal-trojan-02",
        vendor="elastic",
        expected=MALICIOUS,
        reason="LabelStudio copy in the user's roaming profile, unsigned, another hash",
        time="2025-03-07T19:44:10Z",
        host="FAB-LT-2231",
        host_ip="10.40.32.31",
        user=f"{DOMAIN}\\r.osei",
        process=Proc(
            "C:\\Users\\r.osei\\AppData\\Roaming\\Fabrikam\\LabelStudio.exe",
            label.cmdline,
            sha("copied LabelStudio"),
            None,
            False,
            6430,
        ),
        parent=EXPLORER,
        **capture,
    )
    return out


# What the suite's threat intel knows. Legitimate vendor builds are known good, as a reputation service would
# report them; attackers' look-alikes are known bad. Many look-alikes are deliberately absent: intel is not
# the only fact that tells them apart.
KNOWN_GOOD_BUILDS = (
    "PSEXESVC 2.43",
    "PsExec64 2.43",
    "CcmExec 5.00",
    "AgentExecutor 1.80",
    "jamf 11.9",
    "PDQDeployRunner 19.4",
    "gc_worker 1.48",
    "SenseIR 10.8",
    "MsMpEng 4.18.24090",
    "Veeam.EndPoint.Service 6.1",
    "Sysmon64 15.15",
    "MBAMService 5.2",
    "MMSSHOST 3.7",
    "procdump64 11.0",
    "GoogleUpdate 1.3.36",
    "MicrosoftEdgeUpdate 1.3.195",
    "AdobeARM 1.824",
    "OfficeClickToRun 16.0.18129",
    "DropboxUpdate 1.3.27",
    "firefox updater 135",
    "GoogleSoftwareUpdateAgent 1.3",
    "OneDriveSetup 25.020",
    "MSBuild 17.12",
    "csc 4.8.9032",
    "VS setup 3.12",
    "ScreenConnect.ClientService 24.3",
    "ScreenConnect.WindowsClient 24.3",
    "ScreenConnect.ClientService 23.9",
    "ScreenConnect.WindowsClient 23.9",
    "AnyDesk 9.0.4",
    "AteraAgent 1.8",
)
KNOWN_BAD = {
    "fake AgentExecutor": "loader masquerading as the Intune agent executor",
    "fake jamf": "macOS backdoor named after the Jamf agent",
    "fake SenseIR": "loader masquerading as Defender live response",
    "fake Sysmon64": "credential dumper named after Sysmon",
    "fake MBAMService": "credential dumper named after Malwarebytes",
    "dropper GoogleUpdate": "dropper named after Google Update",
    "dropper EdgeUpdate": "dropper named after Edge Update",
    "dropper OfficeClickToRun": "dropper named after Office Click-to-Run",
    "dropper AdobeARM": "dropper named after Adobe's updater",
    "fake VS setup": "trojanized installer named after the Visual Studio installer",
    "trojanized LabelStudio": "trojanized build of Fabrikam LabelStudio",
}
BAD_ADDRESSES = {"203.0.113.250": "SSH brute-force and phishing infrastructure"}


def intel_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {
            "indicator": sha(label),
            "type": "sha256",
            "verdict": "benign",
            "score": 0,
            "source": "fabrikam-suite-intel",
            "tags": ["vendor-build"],
            "description": f"{label} (fictional vendor build)",
        }
        for label in KNOWN_GOOD_BUILDS
    ]
    records += [
        {
            "indicator": sha(label),
            "type": "sha256",
            "verdict": "malicious",
            "score": 95,
            "source": "fabrikam-suite-intel",
            "tags": ["look-alike"],
            "description": f"{text} (fictional)",
        }
        for label, text in KNOWN_BAD.items()
    ]
    records += [
        {
            "indicator": ip,
            "type": "ip",
            "verdict": "malicious",
            "score": 90,
            "source": "fabrikam-suite-intel",
            "tags": ["attacker-infrastructure"],
            "description": f"{text} (fictional)",
        }
        for ip, text in BAD_ADDRESSES.items()
    ]
    return records


def main() -> None:
    lines = []
    for event in cases():
        record = {
            "id": event.id,
            "note": f"{event.activity} ({event.vendor})",
            "reason": event.reason,
            "alert": RENDER[event.vendor](event),
            "expected": {"disposition": event.expected},
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    (HERE / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    intel = "".join(json.dumps(record) + "\n" for record in intel_records())
    (HERE / "intel.jsonl").write_text(intel, encoding="utf-8")
    print(f"{HERE / 'cases.jsonl'}: {len(lines)} cases; intel.jsonl: {intel.count(chr(10))} indicators")


if __name__ == "__main__":
    main()
