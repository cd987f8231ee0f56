"""The settlement stage's HTTP routes: the page behind the signed delivery confirmation
link (``/confirm-delivery``) and the statement PDF (``/statements/NUMBER.pdf``).

Following the confirmation link shows the order, a button that confirms and a form that
reports a problem; only their POSTs act, so a mail scanner that opens every link
confirms nothing. The PDF needs the same bearer token as the API (customers get their
own statements only), or the signed ``token`` of a statement link.
"""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ordergraph.core import scope
from ordergraph.core.auth import Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.limits import DELIVERY_PROBLEM
from ordergraph.core.orders import OrderView, load_order
from ordergraph.core.runtime import Runtime
from ordergraph.graphql.context import principal_for
from ordergraph.stages.settlement import config_of
from ordergraph.stages.settlement.confirmation import (
    confirm_delivery,
    report_problem,
)
from ordergraph.stages.settlement.links import (
    CONFIRM_PATH,
    STATEMENT,
    statement_path,
    verify_confirmation,
    verify_signed,
)
from ordergraph.stages.settlement.pdf import render_statement
from ordergraph.stages.settlement.statements import (
    StatementView,
    statement_by_number,
    statement_of,
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem}}
textarea{{width:100%;box-sizing:border-box;font:inherit}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


PROBLEM_PATH = f"{CONFIRM_PATH}/problem"


def _link_customer(customer_id: int) -> Principal:
    """Who acts through a confirmation link: the order's customer."""
    return Principal(Role.CUSTOMER, "confirmation-link", customer_id=customer_id)


async def _onward(rt: Runtime, order: OrderView) -> str:
    """Where the customer goes next: the order's tracking page and, once issued, the
    statement (signed, as the tracking page links it)."""
    links = [f'<a href="/track?number={escape(order.number)}">Follow order {order.number}</a>']
    statement = await statement_of(order.id)
    path = statement_path(config_of(rt), statement.number) if statement else None
    if path:
        links.append(f'<a href="{escape(path)}">Your statement (PDF)</a>')
    return "".join(f"<p>{link}</p>" for link in links)


def _choices(token: str) -> str:
    hidden = f'<input type="hidden" name="token" value="{escape(token)}">'
    return (
        f'<form method="post" action="{CONFIRM_PATH}">{hidden}'
        "<p>Confirm that everything arrived in good order.</p>"
        "<button type=submit>Yes, confirm delivery</button></form>"
        f'<h2>Something wrong?</h2><form method="post" action="{PROBLEM_PATH}">{hidden}'
        '<p><label for="problem">Tell us what is wrong (missing, damaged, not what you '
        "ordered). We confirm nothing until it is sorted out.</label></p>"
        f'<textarea id="problem" name="description" rows="4" required '
        f'maxlength="{DELIVERY_PROBLEM.max_length}"></textarea>'
        "<p><button type=submit>Report a problem</button></p></form>"
    )


async def confirm_page(request: Request) -> HTMLResponse:
    rt: Runtime = request.app.state.rt
    if request.method == "POST":
        token = str((await request.form()).get("token", ""))
    else:
        token = request.query_params.get("token", "")
    try:
        order_id = verify_confirmation(config_of(rt), token)
    except DomainError as error:
        return _page("Link not valid", f"<p>{escape(str(error))}</p>", 400)
    order = await load_order(order_id)
    if order is None:
        return _page("Link not valid", "<p>This confirmation link is not valid.</p>", 400)
    if order.status in ("COMPLETED", "SETTLED"):
        return _page(
            "Delivery confirmed",
            f"<p>Order {order.number} is confirmed already.</p>{await _onward(rt, order)}",
        )
    if request.method == "GET":
        return _page(
            f"Did order {order.number} arrive?", _choices(token) + await _onward(rt, order)
        )
    customer = _link_customer(order.customer_id)
    try:
        await confirm_delivery(rt, order_id, customer, how="through the signed link")
    except DomainError as error:
        body = f"<p>{escape(str(error))}</p>{await _onward(rt, order)}"
        return _page("Not confirmed", body, 409)
    return _page(
        "Thank you",
        f"<p>Delivery of order {order.number} is confirmed. Its statement will be on the "
        f"order's tracking page once issued.</p>{await _onward(rt, order)}",
    )


async def problem_page(request: Request) -> HTMLResponse:
    """The confirmation page's second form: a problem reported through the signed link."""
    rt: Runtime = request.app.state.rt
    form = await request.form()
    try:
        order_id = verify_confirmation(config_of(rt), str(form.get("token", "")))
    except DomainError as error:
        return _page("Link not valid", f"<p>{escape(str(error))}</p>", 400)
    order = await load_order(order_id)
    if order is None:
        return _page("Link not valid", "<p>This confirmation link is not valid.</p>", 400)
    description = str(form.get("description", ""))
    try:
        await report_problem(rt, order_id, description, _link_customer(order.customer_id))
    except DomainError as error:
        # What was typed is refused (400), too many reports were sent (429), or the order
        # is past reporting (409).
        refused = error.code in (ErrorCode.REQUIRED, ErrorCode.INVALID_CHARACTER)
        limited = error.code == ErrorCode.RATE_LIMITED
        status = 400 if refused else 429 if limited else 409
        return _page("Not reported", f"<p>{escape(str(error))}</p>", status)
    return _page(
        "Thank you",
        f"<p>We have your report on order {order.number} and will be in touch. Its "
        f"delivery is not confirmed until the problem is sorted out.</p>{await _onward(rt, order)}",
    )


async def statement_pdf(request: Request) -> Response:
    number = request.path_params["number"]
    if "token" in request.query_params:
        return await _signed_statement_pdf(request, number)
    principal = await principal_for(request.headers.get("authorization"))
    if principal is None:
        return JSONResponse(
            {
                "code": "UNAUTHENTICATED",
                "message": "Send the header Authorization: Bearer <token>, or follow a "
                "signed statement link.",
            },
            status_code=401,
        )
    statement = await statement_by_number(number)
    if statement is not None and not await scope.may_access_order(principal, statement.order_id):
        statement = None
    if statement is None or principal.role == Role.INTEGRATOR:
        return JSONResponse(
            {"code": "NOT_FOUND", "message": f"There is no statement {number}."}, status_code=404
        )
    return _pdf(statement)


async def _signed_statement_pdf(request: Request, number: str) -> Response:
    """The PDF for a statement link's ``token``, which names the statement it opens."""
    rt: Runtime = request.app.state.rt
    try:
        signed = verify_signed(config_of(rt), STATEMENT, request.query_params["token"])
    except DomainError as error:
        return JSONResponse({"code": error.code.value, "message": str(error)}, status_code=403)
    statement = await statement_by_number(number) if signed == number.upper() else None
    if statement is None:
        return JSONResponse(
            {"code": "NOT_FOUND", "message": f"There is no statement {number}."}, status_code=404
        )
    return _pdf(statement)


def _pdf(statement: StatementView) -> Response:
    return Response(
        render_statement(statement.snapshot),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{statement.number}.pdf"'},
    )


ROUTES = [
    Route(CONFIRM_PATH, confirm_page, methods=["GET", "POST"]),
    Route(PROBLEM_PATH, problem_page, methods=["POST"]),
    Route("/statements/{number}.pdf", statement_pdf, methods=["GET"]),
]
