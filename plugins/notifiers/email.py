"""The ``email`` notifier: tells the customer by e-mail (SMTP through aiosmtplib).

On an order's receipt, approval, rejection (with the customer-worded reasons), shipping
(carrier, tracking number, a link to the tracking page), a parcel out for delivery,
delivery (with the signed link that confirms it or reports a problem), and its
settlement statement (the PDF attached, with the amount, due date and how to pay).
Each message has an HTML and a text part from Jinja2 templates: the built-in ones in
``plugins/notifiers/templates/email/``, or an admin's of the same name in
``templates_dir``. A message is sent once per order event and recipient (however often
the job runs) and every attempt is logged on the order with its outcome.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
import jinja2

from ordergraph.plugin_api import (
    OrderEventView,
    OrderView,
    PluginInfo,
    Runtime,
    Setting,
    StatementView,
    confirmation_link,
    get_customer,
    hookimpl,
    notification_attempt,
    order_tracking,
    record_notification,
    render_statement_pdf,
    settlement_config,
    statement_by_number,
    statement_link,
)

CHANNEL = "email"
BUILT_IN = Path(__file__).parent / "templates" / "email"
SUBJECTS = {
    "received": "We received your order {number}",
    "approved": "Your order {number} is approved",
    "rejected": "We could not accept your order {number}",
    "shipped": "Your order {number} is on its way",
    "out_for_delivery": "Your order {number} is out for delivery",
    "delivered": "Your order {number} was delivered",
    "statement": "Statement {statement} for your order {number}",
}
TRANSITION_KINDS = {
    "APPROVED": "approved",
    "REJECTED": "rejected",
    "SHIPPED": "shipped",
    "DELIVERED": "delivered",
}


def kind_of(event: OrderEventView) -> str | None:
    """Which message an order event calls for, if any."""
    if event.type == "submitted":
        return "received"
    if event.type == "transition":
        return TRANSITION_KINDS.get(event.to_status or "")
    if event.type == "tracking" and event.data.get("status") == "out_for_delivery":
        return "out_for_delivery" if event.data.get("newEvents") else None
    if event.type == "statement_issued":
        return "statement"
    return None


def environment(templates_dir: str) -> jinja2.Environment:
    folders = [templates_dir, str(BUILT_IN)] if templates_dir else [str(BUILT_IN)]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folders),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )


async def issued_statement(event: OrderEventView) -> StatementView:
    """The statement a ``statement_issued`` event names."""
    number = str(event.data.get("statement") or "")
    statement = await statement_by_number(number) if number else None
    if statement is None:
        raise LookupError(f"event {event.id} names no stored statement ({number!r})")
    return statement


async def compose(
    runtime: Runtime,
    settings: dict[str, Any],
    order: OrderView,
    event: OrderEventView,
    kind: str,
    to: str,
) -> EmailMessage:
    customer = await get_customer(order.customer_id)
    tracking = (await order_tracking([order.id]))[order.id]
    statement = await issued_statement(event) if kind == "statement" else None
    config = settlement_config(runtime)
    context = {
        "order": order,
        "customer": customer,
        "reasons": event.data.get("reason") or "",
        "shipments": tracking,
        "tracking_link": f"{settings['tracking_page_url']}?number={order.number}",
        # None without the settlement stage's link_secret: the message says to sign in.
        "confirm_link": confirmation_link(config, order.id) if kind == "delivered" else None,
        "statement": statement,
        "statement_link": statement_link(config, statement.number) if statement else None,
        "subject": SUBJECTS[kind].format(
            number=order.number, statement=statement.number if statement else ""
        ),
    }
    templates = environment(settings["templates_dir"])
    message = EmailMessage()
    message["From"] = settings["from_address"]
    message["To"] = to
    message["Subject"] = context["subject"]
    # The same id on a resend, so a mail client shows one message.
    message["Message-ID"] = make_msgid(f"order{order.id}.event{event.id}", "ordergraph")
    message.set_content(templates.get_template(f"{kind}.txt").render(context))
    message.add_alternative(templates.get_template(f"{kind}.html").render(context), subtype="html")
    if statement is not None:
        message.add_attachment(
            render_statement_pdf(statement.snapshot),
            maintype="application",
            subtype="pdf",
            filename=f"{statement.number}.pdf",
        )
    return message


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="notifier",
        description="E-mails the customer as the order moves (SMTP, Jinja2 templates).",
        settings=(
            Setting("from_address", required=True, description="The sender, e.g. shop@x.com."),
            Setting("smtp_host", default="127.0.0.1", description="The SMTP server."),
            Setting("smtp_port", int, default=25, description="Its port."),
            Setting("smtp_username", default="", description="Login, when the server asks."),
            Setting("smtp_password", default="", secret=True, description="Its password."),
            Setting("use_tls", bool, default=False, description="Connect with TLS."),
            Setting(
                "tracking_page_url",
                default="http://localhost:8000/track",
                description="The customer's tracking page, linked from every message.",
            ),
            Setting(
                "templates_dir",
                default="",
                description="A folder of templates (received.html, received.txt, ..., "
                "statement.txt) used "
                "instead of the built-in ones of the same name.",
            ),
        ),
    )


@hookimpl
async def notify(
    order: OrderView, event: OrderEventView, runtime: Runtime, settings: dict[str, Any]
) -> None:
    kind = kind_of(event)
    if kind is None:
        return
    customer = await get_customer(order.customer_id)
    if customer is None or not customer.email:
        return
    attempts = await notification_attempt(order.id, event.id, CHANNEL, customer.email, kind)
    if attempts is None:
        return
    try:
        message = await compose(runtime, settings, order, event, kind, customer.email)
        await aiosmtplib.send(
            message,
            hostname=settings["smtp_host"],
            port=settings["smtp_port"],
            username=settings["smtp_username"] or None,
            password=settings["smtp_password"] or None,
            use_tls=settings["use_tls"],
            timeout=10,
        )
    except Exception as exc:
        await record_notification(
            order.id, event.id, CHANNEL, customer.email, kind, attempts, f"{exc}"
        )
        raise
    await record_notification(order.id, event.id, CHANNEL, customer.email, kind, attempts)
