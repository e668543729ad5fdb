"""PDF rendering of a report layout with reportlab: a cover page, tables, and charts drawn as vector bars."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as PdfTable
from soctriage.service.reports.layout import BarChart, Layout, Table

_STYLES = getSampleStyleSheet()
_BODY = ParagraphStyle("body", parent=_STYLES["BodyText"], fontSize=9.5, leading=12.5)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=8, leading=10)
_CELL_NUM = ParagraphStyle("cellnum", parent=_CELL, alignment=TA_RIGHT)
_HEAD = ParagraphStyle("head", parent=_CELL, fontName="Helvetica-Bold")
_H1 = ParagraphStyle("h1", parent=_STYLES["Title"], fontSize=22, leading=27, alignment=0)
_H2 = ParagraphStyle("h2", parent=_STYLES["Heading2"], fontSize=13, spaceBefore=10, spaceAfter=4)
_SUB = ParagraphStyle("sub", parent=_BODY, textColor=colors.HexColor("#475467"))
_BIG = ParagraphStyle("big", parent=_BODY, fontName="Helvetica-Bold", fontSize=15, leading=19)
_STATUS_COLOURS = {"met": "#067647", "gap": "#b42318", "no data": "#667085"}
_BAR = colors.HexColor("#2e6fdb")
_GRID = colors.HexColor("#d0d5dd")
_HEAD_BG = colors.HexColor("#f2f4f7")
# Cells are cut here: a PDF table row cannot break across pages, so one huge cell would not fit.
MAX_CELL_CHARS = 600
# Left plus right cell padding (reportlab's TableStyle default of 6 pt each side).
_CELL_PADDING = 12
# A single unbreakable word (a hash, a URL) may claim at most this share of the table's width.
_MAX_WORD_SHARE = 0.36


def _p(text: str, style: ParagraphStyle = _BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _cell(text: str, numeric: bool, header: str) -> Paragraph:
    text = text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"
    if header == "Status" and text in _STATUS_COLOURS:
        return Paragraph(f"<font color='{_STATUS_COLOURS[text]}'><b>{escape(text)}</b></font>", _CELL)
    return Paragraph(escape(text), _CELL_NUM if numeric else _CELL)


def pdf_table(table: Table, width: float) -> Flowable:
    if not table.rows:
        return _p(f"{table.headers[0]}: none", _SUB)
    data = [[Paragraph(escape(h), _HEAD) for h in table.headers]]
    data += [
        [_cell(cell, i in table.numeric, table.headers[i]) for i, cell in enumerate(row)]
        for row in table.rows
    ]
    result = PdfTable(data, colWidths=column_widths(table, width), repeatRows=1)
    result.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, _GRID),
                ("BACKGROUND", (0, 0), (-1, 0), _HEAD_BG),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return result


def _widest(texts: list[str], font: str, size: float, *, words: bool) -> float:
    pieces = [word for text in texts for word in text.split()] if words else texts
    return max((stringWidth(piece, font, size) for piece in pieces), default=0.0)


def column_widths(table: Table, width: float) -> list[float]:
    """Column widths the way a browser lays out a table: each column at least as wide as its longest word
    (header words in bold, ids such as case ids), so no word is broken across lines, and the room left
    shared by how much more each column needs to show its longest cell on one line. Only a word longer than
    about a third of the page (a 64-digit hash) may still wrap."""
    floors, naturals = [], []
    for i, header in enumerate(table.headers):
        cells = [str(row[i])[:MAX_CELL_CHARS] for row in table.rows]
        word = min(_widest(cells, _CELL.fontName, _CELL.fontSize, words=True), width * _MAX_WORD_SHARE)
        floor = max(_widest([header], _HEAD.fontName, _HEAD.fontSize, words=True), word) + _CELL_PADDING
        line = max(
            _widest([header], _HEAD.fontName, _HEAD.fontSize, words=False),
            _widest(cells, _CELL.fontName, _CELL.fontSize, words=False),
        )
        floors.append(floor)
        naturals.append(max(floor, line + _CELL_PADDING))
    if sum(naturals) <= width:
        return [natural * width / sum(naturals) for natural in naturals]
    if sum(floors) >= width:
        return [floor * width / sum(floors) for floor in floors]
    wants = [natural - floor for natural, floor in zip(naturals, floors, strict=True)]
    spare = width - sum(floors)
    return [floor + spare * want / sum(wants) for floor, want in zip(floors, wants, strict=True)]


def pdf_chart(chart: BarChart, width: float, height: float = 62 * mm) -> Drawing:
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, chart.title, fontName="Helvetica-Bold", fontSize=10))
    bars = VerticalBarChart()
    bars.x, bars.y = 36, 30
    # A few bars stay bar-shaped instead of stretching over the whole page.
    bars.width, bars.height = min(width - 48, 60 + 45 * len(chart.values)), height - 52
    bars.data = [chart.values or [0]]
    bars.bars[0].fillColor = _BAR
    bars.bars[0].strokeColor = None
    bars.valueAxis.valueMin = 0
    bars.valueAxis.valueMax = max(max(chart.values, default=0), 1) * 1.15
    bars.valueAxis.labels.fontSize = 7
    every = max(1, -(-len(chart.labels) // 12))
    bars.categoryAxis.categoryNames = [
        label if i % every == 0 else "" for i, label in enumerate(chart.labels or ["-"])
    ]
    bars.categoryAxis.labels.fontSize = 7
    bars.categoryAxis.labels.angle = 30 if len(chart.labels) > 8 else 0
    bars.categoryAxis.labels.boxAnchor = "ne" if len(chart.labels) > 8 else "n"
    if len(chart.labels) <= 24:
        bars.barLabelFormat = "%d"
        bars.barLabels.fontSize = 7
        bars.barLabels.nudge = 6
    drawing.add(bars)
    drawing.add(String(width / 2, 2, chart.x_title, fontSize=8, textAnchor="middle"))
    return drawing


def _footer(canvas: object, doc: SimpleDocTemplate) -> None:
    canvas.saveState()  # type: ignore[attr-defined]
    canvas.setFont("Helvetica", 7.5)  # type: ignore[attr-defined]
    canvas.setFillColor(colors.HexColor("#667085"))  # type: ignore[attr-defined]
    canvas.drawString(doc.leftMargin, 10 * mm, doc.title)  # type: ignore[attr-defined]
    canvas.drawRightString(A4[0] - doc.rightMargin, 10 * mm, f"page {doc.page}")  # type: ignore[attr-defined]
    canvas.restoreState()  # type: ignore[attr-defined]


def render_pdf(layout: Layout) -> bytes:
    """The layout as a PDF: page 1 is a cover with the headline figures, then one block per section."""
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=layout.title,
        author="soctriage",
    )
    width = doc.width
    cover = [
        [Paragraph(escape(value), _BIG), Paragraph(escape(name), _SUB)] for name, value in layout.headline
    ]
    cover_table = PdfTable(cover, colWidths=[width * 0.32, width * 0.68])
    cover_table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, -1), 0.5, _GRID),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 6),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ]
        )
    )
    story: list[Flowable] = [
        _p(layout.title, _H1),
        _p(layout.subtitle, _SUB),
        Spacer(1, 8 * mm),
        cover_table,
    ]
    first = layout.sections[0] if layout.sections else None
    if first is not None and first.chart is None and len(first.tables) == 1:
        # The first section (the requirement mapping, or the case summary) belongs on the cover.
        story += [Spacer(1, 6 * mm), _p(first.title, _H2), *[_p(t) for t in first.text]]
        story.append(pdf_table(first.tables[0], width))
        rest = layout.sections[1:]
    else:
        rest = layout.sections
    story.append(PageBreak())
    for section in rest:
        heading: list[Flowable] = [_p(section.title, _H2), *[_p(t) for t in section.text]]
        if section.chart is not None:
            heading += [pdf_chart(section.chart, width), Spacer(1, 3 * mm)]
        story.append(KeepTogether(heading))
        for table in section.tables:
            story += [pdf_table(table, width), Spacer(1, 3 * mm)]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()
