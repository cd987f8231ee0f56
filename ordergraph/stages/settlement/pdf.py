"""The statement as a PDF, rendered from its stored snapshot (never from live data), so the
document is the same every time it is downloaded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fpdf import FPDF

# The PDF core fonts (Helvetica) cover Latin-1; other characters are replaced.
_ENCODING = "latin-1"
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
BAND = (241, 243, 245)


def _text(value: Any) -> str:
    return str(value).encode(_ENCODING, "replace").decode(_ENCODING)


def _money(amount: str, currency: str) -> str:
    value = Decimal(amount)
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value):,} {currency}"


class _Document(FPDF):
    def __init__(self, number: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.number = number
        self.set_margins(18, 18, 18)
        self.set_auto_page_break(True, margin=22)
        self.alias_nb_pages()

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font("Helvetica", size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, _text(f"Statement {self.number}"), align="L")
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")


def _address_lines(address: dict[str, Any]) -> list[str]:
    city = " ".join(p for p in (address.get("postalCode", ""), address.get("city", "")) if p)
    parts = [address.get("line1", ""), address.get("line2") or "", city, address.get("country")]
    return [str(p) for p in parts if p]


def render_statement(snapshot: dict[str, Any]) -> bytes:
    """An A4 invoice-style PDF of a statement snapshot."""
    currency = snapshot["currency"]
    pdf = _Document(snapshot["number"])
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    seller, customer = snapshot["seller"], snapshot["customer"]

    # Seller (left) and the document's title and numbers (right).
    top = pdf.get_y()
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(width / 2, 8, _text(seller["name"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.set_text_color(*MUTED)
    for line in [*seller["address"], seller["email"], seller["vatId"] and f"VAT {seller['vatId']}"]:
        if line:
            pdf.cell(width / 2, 4.5, _text(line), new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width / 2, top)
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(width / 2, 9, "STATEMENT", align="R", new_x="LEFT", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for label, value in (
        ("Number", snapshot["number"]),
        ("Issued", snapshot["issuedAt"][:10]),
        ("Due", snapshot["dueDate"]),
        ("Order", snapshot["order"]["number"]),
    ):
        pdf.set_x(pdf.l_margin + width / 2)
        pdf.set_text_color(*MUTED)
        pdf.cell(width / 4, 5, label, align="R")
        pdf.set_text_color(*INK)
        pdf.cell(width / 4, 5, _text(value), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)

    # Bill to.
    pdf.set_font("Helvetica", "B", 8)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 5, "BILL TO", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 5, _text(customer["name"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    for line in [*_address_lines(customer["address"]), customer["email"]]:
        pdf.cell(0, 4.5, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    # Lines.
    columns = [("Item", 0.30, "L"), ("Qty", 0.06, "R"), ("Unit price", 0.13, "R"),
               ("Discount", 0.13, "R"), ("Tax rate", 0.09, "R"), ("Tax", 0.12, "R"),
               ("Total", 0.17, "R")]  # fmt: skip
    pdf.set_fill_color(*BAND)
    pdf.set_font("Helvetica", "B", 8.5)
    for title, share, align in columns:
        pdf.cell(width * share, 7, title, align=align, fill=True)
    pdf.ln(7)
    pdf.set_font("Helvetica", size=9)
    for line in snapshot["lines"]:
        item = line["name"] if line["kind"] == "shipping" else f"{line['name']} ({line['sku']})"
        cells = [
            item,
            str(line["quantity"]),
            _money(line["unitPrice"], currency),
            _money(line["adjustments"], currency) if Decimal(line["adjustments"]) else "",
            f"{line['taxRate']}%",
            _money(line["tax"], currency),
            _money(line["total"], currency),
        ]
        for (_, share, align), value in zip(columns, cells, strict=True):
            pdf.cell(width * share, 7, _text(value), align=align)
        pdf.ln(7)
        pdf.set_draw_color(*RULE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())

    # Adjustments, each with where it came from.
    if snapshot["adjustments"]:
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 8)
        pdf.set_text_color(*MUTED)
        pdf.cell(0, 5, "ADJUSTMENTS", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=8.5)
        pdf.set_text_color(*INK)
        for adjustment in snapshot["adjustments"]:
            capped = " (capped)" if adjustment.get("capped") else ""
            pdf.cell(width * 0.82, 5, _text(f"{adjustment['label']}{capped}"))
            pdf.cell(width * 0.18, 5, _money(adjustment["amount"], currency), align="R")
            pdf.ln(5)

    # Totals.
    pdf.ln(4)
    for label, key, bold in (("Subtotal", "subtotal", False),
                             ("Adjustments", "adjustmentTotal", False), ("Net", "net", False),
                             ("Tax", "tax", False), ("Total due", "total", True)):  # fmt: skip
        pdf.set_x(pdf.l_margin + width * 0.55)
        pdf.set_font("Helvetica", "B" if bold else "", 11 if bold else 9)
        fill = bold
        pdf.cell(width * 0.25, 7 if bold else 5.5, label, fill=fill)
        pdf.cell(width * 0.20, 7 if bold else 5.5, _money(snapshot[key], currency),
                 align="R", fill=fill)  # fmt: skip
        pdf.ln(7 if bold else 5.5)

    # Payment and notes.
    pdf.ln(8)
    pdf.set_font("Helvetica", "B", 8)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 5, "PAYMENT", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", size=9)
    instructions = snapshot["paymentInstructions"] or "Please pay the total by the due date."
    pdf.multi_cell(width, 4.8, _text(f"{instructions} Reference: {snapshot['number']}."))
    for note in snapshot["notes"]:
        pdf.set_text_color(*MUTED)
        pdf.multi_cell(width, 4.8, _text(note))
    prices = "include" if snapshot["pricesIncludeTax"] else "exclude"
    pdf.set_text_color(*MUTED)
    pdf.set_font("Helvetica", size=7.5)
    pdf.ln(2)
    pdf.multi_cell(
        width,
        4,
        _text(
            f"Unit prices {prices} tax. Tax is computed per line and rounded "
            f"to the minor unit; destination {snapshot['country']}."
        ),
    )
    return bytes(pdf.output())
