"""The settlement stage's HTTP routes: the page behind the signed delivery confirmation
link (``/confirm-delivery``) and the statement PDF (``/statements/NUMBER.pdf``).

Following the confirmation link shows the order and a button; only the button's POST
confirms, so a mail scanner that opens every link confirms nothing. The PDF needs the
same bearer token as the API: customers get their own statements only.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError
from ordergraph.core.orders import load_order
from ordergraph.core.runtime import Runtime
from ordergraph.core.settlement import config_of
from ordergraph.core.settlement.confirmation import CONFIRM_PATH, confirm_delivery, verify_token
from ordergraph.core.settlement.pdf import render_statement
from ordergraph.core.settlement.statements import statement_by_number
from ordergraph.graphql.context import principal_for

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


async def confirm_page(request: Request) -> HTMLResponse:
    rt: Runtime = request.app.state.rt
    if request.method == "POST":
        token = str((await request.form()).get("token", ""))
    else:
        token = request.query_params.get("token", "")
    try:
        order_id = verify_token(config_of(rt), token)
    except DomainError as error:
        return _page("Link not valid", f"<p>{escape(str(error))}</p>", 400)
    order = await load_order(order_id)
    if order is None:
        return _page("Link not valid", "<p>This confirmation link is not valid.</p>", 400)
    if order.status in ("COMPLETED", "SETTLED"):
        return _page("Delivery confirmed", f"<p>Order {order.number} is confirmed already.</p>")
    if request.method == "GET":
        return _page(
            f"Did order {order.number} arrive?",
            f'<form method="post" action="{CONFIRM_PATH}">'
            f'<input type="hidden" name="token" value="{escape(token)}">'
            "<p>Confirm that everything arrived in good order.</p>"
            "<button type=submit>Yes, confirm delivery</button></form>",
        )
    customer = Principal(Role.CUSTOMER, "confirmation-link", customer_id=order.customer_id)
    try:
        await confirm_delivery(rt, order_id, customer, how="through the e-mailed link")
    except DomainError as error:
        return _page("Not confirmed", f"<p>{escape(str(error))}</p>", 409)
    return _page("Thank you", f"<p>Delivery of order {order.number} is confirmed.</p>")


async def statement_pdf(request: Request) -> Response:
    principal = await principal_for(request.headers.get("authorization"))
    if principal is None:
        return JSONResponse(
            {
                "code": "UNAUTHENTICATED",
                "message": "Send the header Authorization: Bearer <token>.",
            },
            status_code=401,
        )
    number = request.path_params["number"]
    statement = await statement_by_number(number)
    if statement is not None:
        order = await load_order(statement.order_id)
        if order is None or not principal.may_see_customer(order.customer_id):
            statement = None
    if statement is None or principal.role == Role.INTEGRATOR:
        return JSONResponse(
            {"code": "NOT_FOUND", "message": f"There is no statement {number}."}, status_code=404
        )
    return Response(
        render_statement(statement.snapshot),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{statement.number}.pdf"'},
    )


ROUTES = [
    Route(CONFIRM_PATH, confirm_page, methods=["GET", "POST"]),
    Route("/statements/{number}.pdf", statement_pdf, methods=["GET"]),
]
