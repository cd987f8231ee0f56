"""``db.raw``, ``db.insert`` and ``db.insert_together``, the SQL the per-order statements
are written in, answer alike on both databases and write what piccolo's own inserts
write."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from ordergraph.core import db, migrations
from ordergraph.core.errors import is_unique_violation
from ordergraph.core.tables import Customer, Order, OutboxJob


@pytest.fixture
async def connected(database_url: str) -> AsyncIterator[db.Database]:
    database = await db.connect(database_url)
    await migrations.migrate()
    try:
        yield database
    finally:
        await db.disconnect(database)


async def test_placeholders_are_numbered_and_doubled_braces_are_literal(connected: db.Database):
    rows = await db.raw("SELECT {} AS a, '{{}}' AS braces, {} AS b", "first", "second")
    assert rows == [{"a": "first", "braces": "{}", "b": "second"}]


async def test_insert_writes_the_defaults_piccolo_writes(connected: db.Database):
    """Columns left out get the values ``Table.insert`` gives them."""
    ours = await db.insert(OutboxJob, [{"name": "ours", "payload": "{}"}], returning=("id", "name"))
    await OutboxJob.insert(OutboxJob(name="piccolo", payload="{}"))
    rows = {row["name"]: row for row in await OutboxJob.select()}
    assert ours == [{"id": rows["ours"]["id"], "name": "ours"}]
    ignored = {"id", "name", "run_after", "created_at"}
    assert {k: v for k, v in rows["ours"].items() if k not in ignored} == {
        k: v for k, v in rows["piccolo"].items() if k not in ignored
    }
    assert rows["ours"]["created_at"] is not None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_statement_after_disconnect_leaves_no_connection_thread(
    connected: db.Database,
):
    """A table still bound to a closed SQLite engine (a job cut off at shutdown) can
    read, and the connection it took is closed again: a thread left running would
    keep the process from exiting."""
    await db.insert(OutboxJob, [{"name": "kept", "payload": "{}"}])
    await db.disconnect(connected)
    before = set(threading.enumerate())

    rows = await OutboxJob.select(OutboxJob.name)

    assert rows == [{"name": "kept"}]
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=10)
        assert not thread.is_alive(), thread.name


async def test_inserts_together_write_every_table_or_none(connected: db.Database):
    """One statement on PostgreSQL, one transaction on SQLite: a row refused in the last
    table leaves no row in the first."""
    order_id = await db.next_id(Order)
    customer = {"email": "together@example.com", "name": "Together", "currency": "EUR"}
    (customer_row,) = await db.insert(Customer, [customer], returning=("id",))
    order = {
        **({"id": order_id} if order_id is not None else {}),
        "channel": "sql",
        "external_id": "T-1",
        "customer": customer_row["id"],
        "currency": "EUR",
        "status": "RECEIVED",
    }
    job = {"name": "together", "payload": "{}"}

    with pytest.raises(Exception) as refused:
        async with db.write_transaction():
            await db.insert_together(
                [(Order, [order]), (OutboxJob, [job]), (Customer, [customer])], returning=("id",)
            )
    assert is_unique_violation(refused.value)
    assert await Order.count() == 0
    assert await OutboxJob.count() == 0

    async with db.write_transaction():
        written, _ = await db.insert_together(
            [(Order, [order]), (OutboxJob, [job, job])], returning=("id", "name")
        )
    assert [row["name"] for row in written] == ["together", "together"]
    stored = await Order.select(Order.id, Order.external_id)
    assert [row["external_id"] for row in stored] == ["T-1"]
    if order_id is not None:
        assert stored[0]["id"] == order_id
