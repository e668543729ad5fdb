"""One entry point from an `EvidenceReport` to the bytes of any output format."""

from __future__ import annotations

from typing import Literal, get_args

from soctriage.service.reports.layout import build_layout
from soctriage.service.reports.model import EvidenceReport

ReportFormat = Literal["md", "html", "json", "pdf"]
REPORT_FORMATS: tuple[str, ...] = get_args(ReportFormat)
MEDIA_TYPES: dict[str, str] = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "pdf": "application/pdf",
}


def render_report(report: EvidenceReport, fmt: ReportFormat) -> bytes:
    if fmt == "json":
        return report.model_dump_json(indent=2).encode() + b"\n"
    layout = build_layout(report)
    if fmt == "pdf":
        # reportlab is imported only when a PDF is asked for: it is the slowest import of the package.
        from soctriage.service.reports.render_pdf import render_pdf

        return render_pdf(layout)
    from soctriage.service.reports.render_text import render_html, render_markdown

    if fmt == "md":
        return render_markdown(layout).encode()
    if fmt == "html":
        return render_html(layout).encode()
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(REPORT_FORMATS)}")
