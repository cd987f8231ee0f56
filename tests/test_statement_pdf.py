"""The statement PDF: rendered from the stored snapshot, behind the API's bearer token."""

from __future__ import annotations

from conftest import pdf_text
from test_settlement import TenPercentOffAndAFreeMug, confirmed, delivered, shop

from ordergraph.core.tables import Customer


async def test_the_pdf_shows_the_statement_as_issued_to_its_customer_only(
    database_url: str,
) -> None:
    async with shop(database_url, extra={"deals": TenPercentOffAndAFreeMug()}) as api:
        order_id = await delivered(
            api, "PDF-1", [{"sku": "MUG", "quantity": 1}, {"sku": "LAMP", "quantity": 2}]
        )
        order = await confirmed(api, order_id)
        url = order["statement"]["pdfUrl"]
        number = order["statement"]["number"]
        assert url == f"/statements/{number}.pdf"
        # Changed after issue: the document keeps what was issued.
        await Customer.update({Customer.name: "Someone Else"}).where(
            Customer.email == "ada@example.com"
        )
        own = await api.client.get(url, headers={"Authorization": f"Bearer {api.tokens['ada']}"})
        other = await api.client.get(url, headers={"Authorization": f"Bearer {api.tokens['bob']}"})
        anonymous = await api.client.get(url)
        missing = await api.client.get(
            "/statements/ST-1999-000001.pdf",
            headers={"Authorization": f"Bearer {api.tokens['admin']}"},
        )
    assert own.status_code == 200
    assert own.headers["content-type"] == "application/pdf"
    assert own.content.startswith(b"%PDF")
    assert (other.status_code, anonymous.status_code, missing.status_code) == (404, 401, 404)
    text = pdf_text(own.content)
    for expected in (
        "STATEMENT",
        number,
        "Mugs & Co",
        "VAT GB123",
        "Ada",
        "Unter den Linden 1",
        "Lamp (LAMP)",
        "15.00 off the mug (capped)",
        order["statement"]["total"] + " EUR",
        f"Reference: {number}.",
    ):
        assert expected in text, expected
    assert "Someone Else" not in text
