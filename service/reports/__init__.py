"""Evidence for insurers and auditors, recomputed from the case ledger alone (DESIGN §7 `report evidence`)."""

from soctriage.service.reports.evidence import EvidenceBuilder
from soctriage.service.reports.model import EvidenceReport
from soctriage.service.reports.params import EvidenceParams, parse_day
from soctriage.service.reports.rebuild import build_evidence
from soctriage.service.reports.render import REPORT_FORMATS, ReportFormat, render_report
from soctriage.service.reports.source import VerifyMode, evidence_from_store

__all__ = [
    "REPORT_FORMATS",
    "EvidenceBuilder",
    "EvidenceParams",
    "EvidenceReport",
    "ReportFormat",
    "VerifyMode",
    "build_evidence",
    "evidence_from_store",
    "parse_day",
    "render_report",
]
