"""The email notifier through the real app and a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from conftest import Api, make_settings, pdf_text, serve_api, submit
from test_settlement import YEAR, delivered, read, shop

from ordergraph.core.orders import event_view, load_order
from ordergraph.core.tables import OrderEvent
from ordergraph.stages.tracking.tables import Notification
from plugins.notifiers import email as email_notifier


class Inbox:
    """What the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def email_settings(database_url: str, port: int, **more: Any):
    plugins = {
        "email": {
            "enabled": True,
            "from_address": "shop@example.com",
            "smtp_port": port,
            "tracking_page_url": "https://shop.example.com/track",
            **more,
        }
    }
    return make_settings(database_url, plugins=plugins)


def parts(message: email.message.EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


async def test_the_customer_gets_one_email_with_html_and_text_when_the_order_arrives(
    database_url: str,
) -> None:
    with smtp_server() as (inbox, port):
        async with serve_api(email_settings(database_url, port)) as api:
            order = await submit(api, "MAIL-1")
            await api.rt.runner.drain()
            [message] = inbox.messages
            assert message["To"] == "ada@example.com"
            assert message["Subject"] == f"We received your order {order['number']}"
            text, html = parts(message)
            assert f"we received your order {order['number']}" in text
            assert f"https://shop.example.com/track?number={order['number']}" in html
            # The same event notified again (a job retried after a crash): no second mail.
            event = await OrderEvent.select().where(OrderEvent.type == "submitted").first()
            current = await load_order(order["databaseId"])
            await api.rt.plugins.call(
                "notify", order=current, event=event_view(event), runtime=api.rt
            )
            await api.rt.runner.drain()
            assert len(inbox.messages) == 1
            [logged] = [
                e for e in await OrderEvent.select().where(OrderEvent.type == "notification")
            ]
            data = event_view(logged).data
            assert (data["channel"], data["recipient"], data["outcome"], data["attempts"]) == (
                "email",
                "ada@example.com",
                "sent",
                1,
            )


async def test_a_down_smtp_server_is_logged_and_retried(database_url: str) -> None:
    port = free_port()  # nothing listens here
    async with serve_api(email_settings(database_url, port)) as api:
        await submit(api, "MAIL-2")
        await api.rt.runner.drain()
        row = await Notification.select().first()
        assert row["outcome"] == "failed" and row["attempts"] >= 2
        logged = await OrderEvent.select().where(OrderEvent.type == "notification")
        assert [event_view(e).data["attempts"] for e in logged] == list(
            range(1, row["attempts"] + 1)
        )


async def test_an_admins_template_replaces_the_built_in_one(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "received.txt").write_text("Thanks {{ customer.name }}! {{ order.number }}\n")
    with smtp_server() as (inbox, port):
        settings = email_settings(database_url, port, templates_dir=str(tmp_path))
        async with serve_api(settings) as api:
            order = await submit(api, "MAIL-3")
            await api.rt.runner.drain()
            text, html = parts(inbox.messages[0])
            assert text.strip() == f"Thanks Ada! {order['number']}"
            assert "we received your order" in html  # the built-in HTML stays


# -- Delivery and settlement: the signed link, and the statement with its PDF ------------

PUBLIC_URL = "https://shop.example.com"


@contextlib.asynccontextmanager
async def mailing_shop(database_url: str, port: int, **settlement: Any):
    """The settlement tests' shop with the email notifier sending to ``port``."""
    mail = {"from_address": "shop@example.com", "smtp_port": port,
            "tracking_page_url": f"{PUBLIC_URL}/track"}  # fmt: skip
    async with shop(
        database_url,
        extra={"email": email_notifier},
        plugin_settings={"email": mail},
        public_url=PUBLIC_URL,
        **settlement,
    ) as api:
        yield api


def received(inbox: Inbox, subject_start: str) -> email.message.EmailMessage:
    [message] = [m for m in inbox.messages if m["Subject"].startswith(subject_start)]
    return message


def confirm_link_in(message: email.message.EmailMessage) -> str:
    text, html = parts(message)
    [link] = set(re.findall(rf"{PUBLIC_URL}/confirm-delivery\?token=[\w.-]+", text))
    assert f'href="{link}"' in html
    return link.removeprefix(PUBLIC_URL)


async def token_of_page(api: Api, path: str) -> str:
    page = await api.client.get(path)
    assert page.status_code == 200, page.text
    assert "Yes, confirm delivery" in page.text and "Report a problem" in page.text
    return re.search(r'name="token" value="([^"]+)"', page.text).group(1)


async def test_the_delivered_email_links_to_confirming_and_the_statement_email_has_its_pdf(
    database_url: str,
) -> None:
    with smtp_server() as (inbox, port):
        instructions = "Pay by bank transfer within 14 days."
        async with mailing_shop(database_url, port, payment_instructions=instructions) as api:
            order_id = await delivered(api, "MAIL-D1", [{"sku": "MUG", "quantity": 2}])
            number = (await load_order(order_id)).number
            path = confirm_link_in(received(inbox, f"Your order {number} was delivered"))

            # A link whose signature was changed confirms nothing.
            tampered = path[:-1] + ("A" if path[-1] != "A" else "B")
            refused = await api.client.get(tampered)
            assert refused.status_code == 400 and "not valid" in refused.text
            forged = await api.client.post("/confirm-delivery", data={"token": "1.9999999999.x"})
            assert forged.status_code == 400
            assert (await read(api, order_id))["status"] == "DELIVERED"

            token = await token_of_page(api, path)
            done = await api.client.post("/confirm-delivery", data={"token": token})
            assert done.status_code == 200 and "is confirmed" in done.text
            await api.rt.runner.drain()  # the statement job, then its e-mail
            order = await read(api, order_id)
            statement = order["statement"]
            message = received(inbox, f"Statement {statement['number']} for your order {number}")

            # The same event notified again (a retried job): no second statement e-mail.
            issued = next(
                e for e in await OrderEvent.select().where(OrderEvent.type == "statement_issued")
            )
            current = await load_order(order_id)
            await api.rt.plugins.call(
                "notify", order=current, event=event_view(issued), runtime=api.rt
            )
            statement_mails = [m for m in inbox.messages if m["Subject"].startswith("Statement")]
            assert len(statement_mails) == 1
            logged = [
                event_view(e).data
                for e in await OrderEvent.select().where(OrderEvent.type == "notification")
            ]
            # The message's signed link downloads the PDF again, without a bearer token.
            [again] = re.findall(rf"{PUBLIC_URL}(/statements/\S+)", parts(message)[0])
            download = await api.client.get(again)
            assert download.status_code == 200
            assert download.headers["content-type"] == "application/pdf"
            altered = await api.client.get(again.replace("000001.pdf", "000002.pdf"))
            assert altered.status_code == 404
            unsigned = await api.client.get(again.split("?")[0] + "?token=x.1.y")
            assert unsigned.status_code == 403

    assert order["status"] == "COMPLETED"
    assert statement["number"] == f"ST-{YEAR}-000001"
    text, html = parts(message)
    for body in (text, html):
        assert f"{statement['total']} EUR" in body
        assert statement["dueDate"] in body
        assert instructions in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{statement['number']}.pdf"
    pdf = attachment.get_content()
    assert pdf.startswith(b"%PDF-")
    shown = pdf_text(pdf)
    assert statement["number"] in shown
    assert statement["total"] in shown
    kinds = [(e["kind"], e["outcome"]) for e in logged if e["kind"] in ("delivered", "statement")]
    assert kinds == [("delivered", "sent"), ("statement", "sent")]


async def test_a_problem_reported_through_the_emailed_link_pauses_confirmation(
    database_url: str,
) -> None:
    with smtp_server() as (inbox, port):
        async with mailing_shop(database_url, port) as api:
            order_id = await delivered(api, "MAIL-P1", [{"sku": "MUG", "quantity": 1}])
            number = (await load_order(order_id)).number
            path = confirm_link_in(received(inbox, f"Your order {number} was delivered"))
            token = await token_of_page(api, path)

            empty = await api.client.post(
                "/confirm-delivery/problem", data={"token": token, "description": " "}
            )
            assert empty.status_code == 400 and "Describe the problem" in empty.text
            nul = await api.client.post(
                "/confirm-delivery/problem", data={"token": token, "description": "bad\x00"}
            )
            assert nul.status_code == 400 and "control character" in nul.text
            reported = await api.client.post(
                "/confirm-delivery/problem",
                data={"token": token, "description": "One mug arrived broken"},
            )
            assert reported.status_code == 200 and "not confirmed" in reported.text
            confirming = await api.client.post("/confirm-delivery", data={"token": token})
            assert confirming.status_code == 409
            assert "a delivery problem is open" in confirming.text
            order = await read(api, order_id)
    assert order["status"] == "DELIVERED"
    [problem] = [e["data"] for e in order["events"] if e["type"] == "delivery_problem_reported"]
    assert problem["description"] == "One mug arrived broken"


async def test_without_a_link_secret_the_delivered_email_says_to_sign_in(
    database_url: str,
) -> None:
    with smtp_server() as (inbox, port):
        async with mailing_shop(database_url, port, link_secret="") as api:
            order_id = await delivered(api, "MAIL-N1", [{"sku": "MUG", "quantity": 1}])
            number = (await load_order(order_id)).number
            text, _html = parts(received(inbox, f"Your order {number} was delivered"))
    assert "confirm-delivery" not in text
    assert "Sign in to your account" in text
