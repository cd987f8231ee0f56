"""The CSV channel: `ordergraph import csv FILE` as a user runs it, and the HTTP upload.

Every test runs on SQLite and on PostgreSQL. The command runs in its own process
against the database of the running test service, with the same config file.
"""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Api, Streamed, make_settings

from ordergraph.core import assembly
from ordergraph.core.plugins import PluginConfigError
from ordergraph.core.settings import ConfigError, Settings

ORDERGRAPH = str(Path(sys.executable).with_name("ordergraph"))
COMMAND_TIMEOUT = 120
UPLOAD_LIMIT = 5000
CONFIG = f"""
[ordergraph]
max_upload_bytes = {UPLOAD_LIMIT}

[plugins.stock]
enabled = true
"""

HEADER = (
    "external_id,customer_email,customer_name,sku,quantity,unit_price,currency,"
    "ship_name,ship_line1,ship_line2,ship_city,ship_postal_code,ship_country,ship_phone\n"
)
# Two valid orders (one of two rows, one for a new customer) and one with an unknown SKU.
ORDERS_CSV = HEADER + (
    "WEB-1001,ada@example.com,,MUG,2,,EUR,Ada Lovelace,12 St James's Square,,London,"
    "SW1Y 4JH,GB,\n"
    "WEB-1001,,,TEE,1,20.00,,,,,,,,\n"
    'WEB-1002,grace@example.com,Grace Hopper,LAMP,1,,EUR,Grace Hopper,"1 Navy Yard, '
    'Building 5",,Arlington,22202,US,+1 555 0100\n'
    "WEB-1003,bob@example.com,,NOPE,1,,EUR,Bob,1 Main St,,Leeds,LS1 1AA,GB,\n"
)

ORDERS = """
query Orders($channel: String) {
  orders(filter: {channel: $channel}) {
    totalCount
    edges { node {
      number channel externalId status total currency
      customer { email name }
      shippingAddress { name line1 city postalCode country phone }
      lines { sku quantity unitPrice total }
    } }
  }
}
"""
IMPORT_ERRORS = """
query Inbox($channel: String) {
  importErrors(channel: $channel) {
    totalCount
    edges { node { id reference status attempts reasons { field code message } } }
  }
}
"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The service reviews orders with the stock rule; uploads are capped (see CONFIG)."""
    return make_settings(
        database_url, max_upload_bytes=UPLOAD_LIMIT, plugins={"stock": {"enabled": True}}
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the command runs: the service's config file is there."""
    (tmp_path / "ordergraph.toml").write_text(CONFIG)
    return tmp_path


def csv_file(directory: Path, text: str, name: str = "orders.csv") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def environment(database_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "ORDERGRAPH_CONFIG", "ORDERGRAPH_ENV")
    }
    return {**env, "DATABASE_URL": database_url}


async def import_csv(
    database_url: str, cwd: Path, *args: str, **run: Any
) -> subprocess.CompletedProcess[str]:
    """``ordergraph import csv ARGS`` in a process of its own."""
    return await asyncio.to_thread(
        subprocess.run,
        [ORDERGRAPH, "import", "csv", *args],
        cwd=cwd,
        env=environment(database_url),
        text=True,
        timeout=COMMAND_TIMEOUT,
        **({"capture_output": True} | run),
    )


async def orders(api: Api, channel: str = "csv") -> dict[str, dict[str, Any]]:
    data = await api.data(ORDERS, {"channel": channel})
    return {edge["node"]["externalId"]: edge["node"] for edge in data["orders"]["edges"]}


async def inbox(api: Api, channel: str = "csv") -> list[dict[str, Any]]:
    data = await api.data(IMPORT_ERRORS, {"channel": channel})
    return [edge["node"] for edge in data["importErrors"]["edges"]]


async def upload(api: Api, text: str, *, as_: str | None = "admin", **params: str):
    headers = {"Content-Type": "text/csv"}
    if as_:
        headers["Authorization"] = f"Bearer {api.tokens[as_]}"
    return await api.client.post(
        "/channels/csv/upload", content=text.encode(), headers=headers, params=params
    )


async def test_import_command_creates_multi_row_orders_and_a_second_run_creates_none(
    api: Api, database_url: str, workdir: Path
) -> None:
    path = csv_file(workdir, ORDERS_CSV)

    first = await import_csv(database_url, workdir, str(path))

    assert first.returncode == 1, first.stderr  # one order was rejected
    assert first.stdout.splitlines()[:2] == [
        "row 5, sku (order WEB-1003): UNKNOWN_SKU: We do not sell SKU NOPE.",
        "created 2, duplicate 0, rejected 1",
    ]
    imported = await orders(api)
    assert set(imported) == {"WEB-1001", "WEB-1002"}
    two_rows = imported["WEB-1001"]
    assert [(line["sku"], line["quantity"], line["unitPrice"]) for line in two_rows["lines"]] == [
        ("MUG", 2, "12.50"),
        ("TEE", 1, "20.00"),
    ]
    assert (two_rows["total"], two_rows["currency"]) == ("45.00", "EUR")
    assert two_rows["customer"] == {"email": "ada@example.com", "name": "Ada"}
    new_customer = imported["WEB-1002"]
    assert new_customer["customer"] == {"email": "grace@example.com", "name": "Grace Hopper"}
    assert new_customer["shippingAddress"] == {
        "name": "Grace Hopper",
        "line1": "1 Navy Yard, Building 5",
        "city": "Arlington",
        "postalCode": "22202",
        "country": "US",
        "phone": "+1 555 0100",
    }
    [rejected] = await inbox(api)
    assert rejected["reference"] == "WEB-1003"
    assert [(r["field"], r["code"]) for r in rejected["reasons"]] == [
        ("lines[0].sku", "UNKNOWN_SKU")
    ]

    second = await import_csv(database_url, workdir, str(path))

    assert second.returncode == 1, second.stderr
    assert "created 0, duplicate 2, rejected 1" in second.stdout.splitlines()
    assert set(await orders(api)) == {"WEB-1001", "WEB-1002"}
    [still_rejected] = await inbox(api)
    assert (still_rejected["id"], still_rejected["attempts"]) == (rejected["id"], 2)


async def test_orders_the_command_imports_are_reviewed_by_the_running_service(
    api: Api, database_url: str, workdir: Path
) -> None:
    """The command leaves its jobs in the outbox; the service's runner hears of them (from
    PostgreSQL's NOTIFY, or the SQLite file's change) and runs them, unprompted."""
    path = csv_file(workdir, HEADER + "R-1,ada@example.com,,MUG,2,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n")

    result = await import_csv(database_url, workdir, str(path))

    assert result.returncode == 0, result.stderr
    async with asyncio.timeout(30):  # the runner's own idle check is 60 s away
        while (await orders(api))["R-1"]["status"] != "APPROVED":
            await asyncio.sleep(0.05)


async def test_dry_run_checks_every_order_and_stores_nothing(
    api: Api, database_url: str, workdir: Path
) -> None:
    path = csv_file(workdir, ORDERS_CSV)

    dry = await import_csv(database_url, workdir, str(path), "--dry-run")

    assert dry.returncode == 1, dry.stderr
    assert dry.stdout.splitlines() == [
        "row 5, sku (order WEB-1003): UNKNOWN_SKU: We do not sell SKU NOPE.",
        "dry run, nothing was stored: would create 2, duplicate 0, rejected 1",
    ]
    assert await orders(api) == {}
    assert await inbox(api) == []
    customers = await api.data("{ customers { edges { node { email } } } }")
    assert "grace@example.com" not in str(customers)

    real = await import_csv(database_url, workdir, str(path))
    assert "created 2, duplicate 0, rejected 1" in real.stdout.splitlines()
    again = await import_csv(database_url, workdir, str(path), "--dry-run")
    assert (
        "dry run, nothing was stored: would create 0, duplicate 2, rejected 1"
        in again.stdout.splitlines()
    )


async def test_a_file_without_the_required_columns_is_refused_as_a_whole(
    api: Api, database_url: str, workdir: Path
) -> None:
    text = "external_id,customer_email,sku\nX-1,ada@example.com,MUG\n"
    path = csv_file(workdir, text)

    result = await import_csv(database_url, workdir, str(path))

    assert result.returncode == 2
    assert "lacks the column(s) quantity" in result.stderr
    response = await upload(api, text)
    assert response.status_code == 400
    assert "lacks the column(s) quantity" in response.json()["error"]
    assert await orders(api) == {}


async def test_the_progress_bar_is_drawn_on_a_terminal(
    api: Api, database_url: str, workdir: Path
) -> None:
    rows = "".join(
        f"P-{n},ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n" for n in range(3)
    )
    path = csv_file(workdir, HEADER + rows, "progress.csv")
    terminal, stderr = pty.openpty()
    try:
        on_terminal = {"capture_output": False, "stdout": subprocess.PIPE, "stderr": stderr}
        result = await import_csv(database_url, workdir, str(path), **on_terminal)
        os.close(stderr)
        drawn = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(terminal)

    assert result.returncode == 0
    assert "created 3, duplicate 0, rejected 0" in result.stdout
    assert f"\rprogress.csv [{'#' * 30}] 3/3 orders" in drawn.decode()
    assert "1/3 orders" in drawn.decode()


async def test_invalid_rows_are_reported_by_row_and_column_and_do_not_stop_the_batch(
    api: Api,
) -> None:
    text = (
        "external_id,customer_email,sku,quantity,unit_price,currency,"
        "ship_name,ship_line1,ship_city,ship_postal_code,ship_country\n"
        "B-1,ada@example.com,MUG,1.5,,EUR,Ada,1 Road,London,N1 1AA,GB\n"
        "B-1,bob@example.com,TEE,1,,,,,,,\n"
        "B-2,ada@example.com,MUG,1,abc,EUR,Ada,1 Road,,N1 1AA,GB\n"
        ",ada@example.com,MUG,1,,EUR,Ada,1 Road,London,N1 1AA,GB\n"
        "B-3,ada@example.com,MUG,3,,EUR,Ada,1 Road,London,N1 1AA,GB\n"
        "B-2,,FOO,2,,,,,,,\n"
    )

    response = await upload(api, text)

    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["created"], summary["duplicate"], summary["rejected"]) == (1, 0, 3)
    located = [(p["row"], p["column"], p["code"], p["external_id"]) for p in summary["problems"]]
    assert sorted(located) == sorted(
        [
            (2, "quantity", "INVALID_QUANTITY", "B-1"),
            (3, "customer_email", "INVALID_VALUE", "B-1"),
            (4, "ship_city", "REQUIRED", "B-2"),
            (4, "unit_price", "INVALID_PRICE", "B-2"),
            (5, "external_id", "REQUIRED", ""),
            (7, "sku", "UNKNOWN_SKU", "B-2"),
        ]
    )
    assert [row for row, *_ in located] == sorted(row for row, *_ in located)
    quantity = next(p for p in summary["problems"] if p["column"] == "quantity")
    assert "whole number" in quantity["message"] and "'1.5'" in quantity["message"]
    created = next(o for o in summary["orders"] if o["status"] == "created")
    assert (created["external_id"], created["rows"]) == ("B-3", [6])
    assert created["order"] == (await orders(api))["B-3"]["number"]
    assert set(await orders(api)) == {"B-3"}
    assert sorted(entry["reference"] for entry in await inbox(api)) == ["B-1", "B-2"]


async def test_upload_needs_an_admin_or_integrator_token(api: Api) -> None:
    text = HEADER + "U-1,ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n"

    anonymous = await upload(api, text, as_=None)
    forged = await api.client.post(
        "/channels/csv/upload", content=text, headers={"Authorization": "Bearer og_forged"}
    )
    staff = await upload(api, text, as_="staff")
    customer = await upload(api, text, as_="ada")

    assert (anonymous.status_code, forged.status_code) == (401, 401)
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (staff.status_code, customer.status_code) == (403, 403)
    assert await orders(api) == {}

    integrator = await upload(api, text, as_="integrator")
    assert integrator.status_code == 200
    assert integrator.json()["created"] == 1
    assert set(await orders(api)) == {"U-1"}


async def test_upload_takes_a_multipart_file_and_refuses_files_over_the_limit(api: Api) -> None:
    text = HEADER + "M-1,ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n"
    admin = {"Authorization": f"Bearer {api.tokens['admin']}"}

    response = await api.client.post(
        "/channels/csv/upload", files={"file": ("orders.csv", text, "text/csv")}, headers=admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1
    too_large = text + "M-2,ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n" * 100
    assert len(too_large.encode()) > UPLOAD_LIMIT
    refused = await api.client.post(
        "/channels/csv/upload", files={"file": ("big.csv", too_large, "text/csv")}, headers=admin
    )
    assert refused.status_code == 413
    assert set(await orders(api)) == {"M-1"}


def multipart(text: str, boundary: str = "og-boundary") -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        f"{text}\r\n--{boundary}--\r\n"
    ).encode()


@pytest.mark.parametrize("form", [False, True], ids=["text-csv", "multipart"])
async def test_an_upload_over_the_cap_is_refused_before_it_is_read_past_the_cap(
    api: Api, form: bool
) -> None:
    rows = "".join(
        f"B-{n},ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n" for n in range(2000)
    )
    streamed = Streamed(multipart(HEADER + rows) if form else (HEADER + rows).encode(), 1000)
    content_type = "multipart/form-data; boundary=og-boundary" if form else "text/csv"
    headers = {"Authorization": f"Bearer {api.tokens['admin']}", "Content-Type": content_type}

    refused = await api.client.post("/channels/csv/upload", content=streamed, headers=headers)
    announced = Streamed(streamed.body)
    refused_at_once = await api.client.post(
        "/channels/csv/upload",
        content=announced,
        headers=headers | {"Content-Length": str(len(announced.body))},
    )

    assert refused.status_code == 413
    assert refused.json() == {"error": f"The body is larger than {UPLOAD_LIMIT} bytes."}
    assert streamed.pulled <= UPLOAD_LIMIT + streamed.chunk
    assert (refused_at_once.status_code, announced.pulled) == (413, 0)
    assert await orders(api) == {}
    assert await inbox(api) == []


def test_the_upload_cap_is_a_setting_of_the_service(tmp_path: Path) -> None:
    config = tmp_path / "ordergraph.toml"
    env = {"ORDERGRAPH_CONFIG": str(config)}

    config.write_text("[ordergraph]\nmax_upload_bytes = 2_000_000\n")
    assert Settings.from_env(env).max_upload_bytes == 2_000_000
    assert Settings.from_env(env).max_webhook_body_bytes == 1_000_000
    config.write_text('[ordergraph]\nmax_upload_bytes = "big"\n')
    with pytest.raises(
        ConfigError, match=r"ordergraph\.max_upload_bytes: expected a number of bytes"
    ):
        Settings.from_env(env)
    config.write_text("[ordergraph]\nmax_webhook_body_bytes = 0\n")
    with pytest.raises(ConfigError, match=r"ordergraph\.max_webhook_body_bytes"):
        Settings.from_env(env)
    # It was a setting of the csv plugin; a config that still says so is told.
    with pytest.raises(PluginConfigError, match=r"plugins\.csv\.max_upload_bytes: unknown"):
        assembly.load_plugins(Settings(plugins={"csv": {"max_upload_bytes": 1}}))


async def test_a_channel_name_keeps_external_ids_of_another_source_apart(api: Api) -> None:
    text = HEADER + (
        "C-1,ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n"
        "C-2,ada@example.com,,NOPE,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n"
    )

    plain = (await upload(api, text)).json()
    marketplace = (await upload(api, text, channel="marketplace")).json()
    again = (await upload(api, text, channel="marketplace")).json()

    assert (plain["created"], marketplace["created"], again["created"]) == (1, 1, 0)
    assert again["duplicate"] == 1
    assert set(await orders(api, "csv")) == {"C-1"}
    assert (await orders(api, "marketplace"))["C-1"]["channel"] == "marketplace"
    assert sorted(entry["reference"] for entry in await inbox(api)) == ["C-2", "marketplace:C-2"]
    bad_name = await upload(api, text, channel="Not A Channel")
    assert bad_name.status_code == 400


@pytest.mark.parametrize("channel", ["web", "shopify", "woocommerce", "stock"])
async def test_a_channel_name_of_another_plugin_is_refused(
    api: Api, database_url: str, workdir: Path, channel: str
) -> None:
    """Orders filed under ``web`` or ``shopify`` would pass for that channel's own."""
    text = HEADER + "P-1,ada@example.com,,MUG,1,,EUR,Ada,1 Road,,Leeds,LS1,GB,\n"
    refusal = f"the channel name '{channel}' belongs to the installed plugin {channel}"

    uploaded = await upload(api, text, channel=channel)
    dry_run = await upload(api, text, channel=channel, dry_run="true")
    command = await import_csv(
        database_url, workdir, str(csv_file(workdir, text)), "--channel", channel
    )

    assert (uploaded.status_code, dry_run.status_code) == (400, 400)
    assert refusal in uploaded.json()["error"]
    assert command.returncode == 2
    assert refusal in command.stderr
    assert command.stdout == ""
    assert await orders(api, channel) == {}
    assert await inbox(api, channel) == []
    assert await inbox(api, "csv") == []
    own_name = await upload(api, text, channel="csv")
    assert (own_name.status_code, own_name.json()["created"]) == (200, 1)
