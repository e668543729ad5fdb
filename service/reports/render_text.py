"""Markdown and self-contained HTML (charts as inline SVG) renderings of a report layout."""

from __future__ import annotations

import html

from soctriage.service.reports.layout import BarChart, Layout, Table

# Alert text is untrusted: it is escaped everywhere it is shown.


def _md_cell(text: str) -> str:
    escaped = html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")
    return " ".join(escaped.split())


def _md_table(table: Table) -> list[str]:
    if not table.rows:
        return [f"_{_md_cell(table.headers[0])}: none_", ""]
    align = ["---:" if i in table.numeric else "---" for i in range(len(table.headers))]
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows]
    return [*lines, ""]


def render_markdown(layout: Layout) -> str:
    lines = [f"# {_md_cell(layout.title)}", "", f"_{_md_cell(layout.subtitle)}_", "", "## Summary", ""]
    lines += _md_table(Table(("Measure", "Value"), layout.headline, frozenset({1})))
    for section in layout.sections:
        lines += [f"## {_md_cell(section.title)}", ""]
        for paragraph in section.text:
            lines += [_md_cell(paragraph), ""]
        for table in section.tables:
            lines += _md_table(table)
        if section.chart is not None:
            chart = section.chart
            lines += [f"**{_md_cell(chart.title)}**", ""]
            lines += _md_table(
                Table(
                    (chart.x_title, chart.y_title),
                    [(label, str(value)) for label, value in zip(chart.labels, chart.values, strict=True)],
                    frozenset({1}),
                )
            )
    return "\n".join(lines)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def svg_bar_chart(chart: BarChart, width: int = 720, height: int = 260) -> str:
    """A bar chart as inline SVG: axes, value labels, and at most ~16 x labels so they never overlap."""
    left, right, top, bottom = 48, 12, 28, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(chart.values, default=0) or 1
    n = max(1, len(chart.values))
    step = plot_w / n
    bar_w = max(1.0, step * 0.72)
    label_every = max(1, -(-n // 16))
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' viewBox='0 0 {width} {height}' "
        f"width='100%' style='max-width:{width}px' aria-label='{_e(chart.title)}'>",
        f"<title>{_e(chart.title)}</title>",
        f"<text x='{left}' y='16' font-size='13' font-weight='600' fill='#1d2330'>{_e(chart.title)}</text>",
    ]
    for tick in range(5):
        value = peak * tick / 4
        y = top + plot_h - plot_h * tick / 4
        parts.append(
            f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e4e7ec'/>"
            f"<text x='{left - 6}' y='{y + 4:.1f}' font-size='10' text-anchor='end' fill='#475467'>"
            f"{value:.0f}</text>"
        )
    for i, (label, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        x = left + i * step + (step - bar_w) / 2
        h = plot_h * value / peak
        parts.append(
            f"<rect x='{x:.1f}' y='{top + plot_h - h:.1f}' width='{bar_w:.1f}' height='{h:.1f}' "
            f"fill='#2e6fdb'><title>{_e(label)}: {value}</title></rect>"
        )
        if n <= 24 and value:
            parts.append(
                f"<text x='{x + bar_w / 2:.1f}' y='{top + plot_h - h - 3:.1f}' font-size='10' "
                f"text-anchor='middle' fill='#1d2330'>{value}</text>"
            )
        if i % label_every == 0:
            parts.append(
                f"<text x='{x + bar_w / 2:.1f}' y='{top + plot_h + 14}' font-size='10' "
                f"text-anchor='middle' fill='#475467'>{_e(label)}</text>"
            )
    parts.append(
        f"<line x1='{left}' x2='{width - right}' y1='{top + plot_h}' y2='{top + plot_h}' stroke='#98a2b3'/>"
        f"<text x='{left + plot_w / 2:.0f}' y='{height - 12}' font-size='11' text-anchor='middle' "
        f"fill='#475467'>{_e(chart.x_title)}</text></svg>"
    )
    return "".join(parts)


_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#1d2330;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:2px solid #e4e7ec}
.sub{color:#475467}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:.8rem}
.card{border:1px solid #d0d5dd;border-radius:8px;padding:.7rem .9rem}.card b{display:block;font-size:1.35rem}
.card span{color:#475467;font-size:.85rem}table{border-collapse:collapse;width:100%;margin:.6rem 0 1rem}
th,td{border:1px solid #d0d5dd;padding:4px 8px;text-align:left;vertical-align:top;word-break:break-word}
th{background:#f2f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
.met{color:#067647;font-weight:600}.gap{color:#b42318;font-weight:600}.nodata{color:#667085;font-weight:600}
"""


def _html_table(table: Table) -> str:
    if not table.rows:
        return f"<p class='sub'>{_e(table.headers[0])}: none</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            css = " class='n'" if i in table.numeric else ""
            if table.headers[i] == "Status" and cell in ("met", "gap", "no data"):
                css = f" class='{cell.replace(' ', '')}'"
            cells.append(f"<td{css}>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(layout: Layout) -> str:
    cards = "".join(f"<div class='card'><b>{_e(v)}</b><span>{_e(k)}</span></div>" for k, v in layout.headline)
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(layout.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(layout.title)}</h1><p class='sub'>{_e(layout.subtitle)}</p>",
        f"<h2>Summary</h2><div class='cards'>{cards}</div>",
    ]
    for section in layout.sections:
        parts.append(f"<h2>{_e(section.title)}</h2>")
        parts += [f"<p>{_e(text)}</p>" for text in section.text]
        if section.chart is not None:
            parts.append(svg_bar_chart(section.chart))
        parts += [_html_table(table) for table in section.tables]
    parts.append("</body></html>\n")
    return "".join(parts)
