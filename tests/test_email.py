"""The email notifier through the real app and a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from conftest import make_settings, serve_api, submit

from ordergraph.core.orders import event_view, load_order
from ordergraph.core.tables import Notification, OrderEvent


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
            current = await load_order(int(order["id"]))
            await api.rt.plugins.call("notify", order=current, event=event_view(event))
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
