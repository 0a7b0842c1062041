"""The engine's FormPrinter port: a portfolio Document laid out like a paper form, with reportlab.

Each field is a box: its label on a shaded bar, the person's words beneath, in
a ruled frame, as on a regulator's form. The fonts are the Bitstream Vera
faces that ship inside reportlab, so curly quotes and dashes print on a host
with no fonts installed, and nothing is fetched. The text in the PDF is the
Markdown's text (a test compares them with pdftotext).
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from bot.engine.portfolio import Document

_FONTS_READY = False


def _fonts() -> None:
    global _FONTS_READY
    if _FONTS_READY:
        return
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    for name, file in (("Vera", "Vera.ttf"), ("VeraBd", "VeraBd.ttf"), ("VeraIt", "VeraIt.ttf"),
                       ("VeraBI", "VeraBI.ttf")):
        pdfmetrics.registerFont(TTFont(name, file))
    addMapping("Vera", 0, 0, "Vera")
    addMapping("Vera", 1, 0, "VeraBd")
    addMapping("Vera", 0, 1, "VeraIt")
    addMapping("Vera", 1, 1, "VeraBI")
    _FONTS_READY = True


def _para(text: str) -> str:
    return escape(text).replace("\n", "<br/>")


class ReportlabPrinter:
    """Prints portfolio Documents as A4 PDF forms."""

    def pdf(self, document: Document) -> bytes:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.lib.units import mm
        from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

        _fonts()
        body = ParagraphStyle("body", fontName="Vera", fontSize=10, leading=13.5)
        label = ParagraphStyle("label", parent=body, fontName="VeraBd", fontSize=9.5, leading=12.5)
        title = ParagraphStyle("title", parent=body, fontName="VeraBd", fontSize=16, leading=20, spaceAfter=8)
        heading = ParagraphStyle("heading", parent=body, fontName="VeraBd", fontSize=12.5, leading=16,
                                 spaceBefore=10, spaceAfter=5)
        out = io.BytesIO()
        page = SimpleDocTemplate(out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                                 bottomMargin=16 * mm, title=document.title, author="", creator="Spanner",
                                 producer="Spanner", subject="")
        width = A4[0] - 36 * mm
        story: list = [Paragraph(_para(document.title), title)]
        story += [Paragraph(_para(p), body) for p in document.intro] + [Spacer(1, 4 * mm)]
        box_style = TableStyle([
            ("BOX", (0, 0), (-1, -1), 0.8, colors.black),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#E6E6E6")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
            ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
        ])
        for section in document.sections:
            parts: list = [Paragraph(_para(section.heading), heading)]
            for box in section.boxes:
                # One box per paragraph row, so a long answer may run over a page without breaking the form.
                rows = [[Paragraph(_para(box.label), label)]]
                rows += [[Paragraph(_para(p), body)] for p in box.text.split("\n\n")]
                table = Table(rows, colWidths=[width], splitByRow=1)
                table.setStyle(box_style)
                parts += [table, Spacer(1, 3 * mm)]
            parts += [Paragraph(_para(line), body) for line in section.lines]
            story.append(KeepTogether(parts[:2]))
            story += parts[2:]
        page.build(story)
        return out.getvalue()
