"""How much memory the API process spends on webhook bodies it refuses.

    .venv/bin/python benchmarks/webhook_memory.py [--mb-unsigned 200] [--mb-signed 20]

Starts a real ``ordergraph serve`` (uvicorn) in a subprocess on a temporary SQLite file,
with the Shopify channel enabled through a temporary ``ordergraph.toml``, and sends it,
over real HTTP and streamed by the client (a generator, so the client holds one chunk at
a time), an unsigned body and signed bodies larger than ``max_webhook_body_bytes``, then
a valid order. After each request it reads the server's ``VmHWM`` (peak resident memory)
and ``VmRSS`` from ``/proc/PID/status``; the table shows them against the baseline taken
after a first small delivery, and how much of each body the client could send before
the answer came (what the server did not read stayed in the sockets' buffers).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import markdown_table

SECRET = "benchmark-secret"
ORDERGRAPH = str(Path(sys.executable).with_name("ordergraph"))
CHUNK = 1 << 20
MB = 1_000_000


@dataclass
class Row:
    request: str
    status: str
    sent_mb: float
    seconds: float
    peak_kb: int
    rss_kb: int


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of a process, in kB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def order(order_id: int) -> bytes:
    return json.dumps(
        {
            "id": order_id,
            "email": "bench@example.com",
            "currency": "EUR",
            "shipping_address": {"name": "Ada Lovelace", "address1": "1 Road", "city": "Leeds",
                                 "zip": "LS1 1AA", "country_code": "GB"},
            "line_items": [{"sku": "NOT-SOLD", "quantity": 1, "price": "1.00"}],
        }
    ).encode()  # fmt: skip


class Body:
    """``size`` bytes (a JSON order, then spaces), generated a chunk at a time."""

    def __init__(self, size: int) -> None:
        self.head, self.size, self.sent = order(1), size, 0

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        self.sent = len(self.head)
        filler = b" " * CHUNK
        while self.sent < self.size:
            part = filler[: min(CHUNK, self.size - self.sent)]
            self.sent += len(part)
            yield part

    def signature(self) -> str:
        mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha256)
        for part in Body(self.size).chunks():
            mac.update(part)
        return base64.b64encode(mac.digest()).decode()


def send(
    client: httpx.Client, pid: int, label: str, body: Body | bytes, *, signed: bool, length: bool
) -> Row:
    """One delivery; the row says what the server answered and its memory afterwards."""
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": label}
    if isinstance(body, bytes):
        content: bytes | Iterator[bytes] = body
        if signed:
            digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
            headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(digest).decode()
    else:
        content = body.chunks()
        if signed:
            headers["X-Shopify-Hmac-Sha256"] = body.signature()
        if length:
            headers["Content-Length"] = str(body.size)
    started = time.perf_counter()
    try:
        response = client.post("/channels/shopify/webhook", content=content, headers=headers)
        answer = response.json()
        status = f"{response.status_code} {answer.get('status') or response.reason_phrase}"
    except httpx.TransportError as exc:
        status = f"no answer ({type(exc).__name__})"
    seconds = time.perf_counter() - started
    sent = (len(body) if isinstance(body, bytes) else body.sent) / MB
    return Row(label, status, sent, seconds, *memory_kb(pid))


def wait_until_up(client: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if server.poll() is not None:
            raise RuntimeError("ordergraph serve exited; see its output above")
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("ordergraph serve did not answer /health within 30 s")


def run(unsigned_mb: int, signed_mb: int) -> tuple[list[Row], int]:
    with tempfile.TemporaryDirectory(prefix="og_webhook_memory_") as directory:
        config = Path(directory) / "ordergraph.toml"
        config.write_text(f'[plugins.shopify]\nenabled = true\nwebhook_secret = "{SECRET}"\n')
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ORDERGRAPH_ENV")} | {
            "DATABASE_URL": f"sqlite:///{directory}/bench.db",
            "ORDERGRAPH_CONFIG": str(config),
        }
        server = subprocess.Popen(
            [ORDERGRAPH, "serve", "--port", str(port)],
            cwd=directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base_url, timeout=600) as client:
                wait_until_up(client, server)
                # Load every code path of a delivery once before the baseline.
                warm = send(client, server.pid, "warm-up", order(2), signed=True, length=True)
                baseline = warm.peak_kb
                rows = [warm]
                for label, size, signed, length in (
                    (f"{unsigned_mb} MB unsigned, chunked", unsigned_mb, False, False),
                    (f"{unsigned_mb} MB signed, chunked", unsigned_mb, True, False),
                    (f"{signed_mb} MB signed, chunked", signed_mb, True, False),
                    (f"{signed_mb} MB signed, Content-Length", signed_mb, True, True),
                ):
                    body = Body(size * MB)
                    rows.append(send(client, server.pid, label, body, signed=signed, length=length))
                rows.append(
                    send(client, server.pid, "small order", order(3), signed=True, length=True)
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rows, baseline


def table(rows: list[Row], baseline: int) -> str:
    header = ("request", "status", "client sent MB", "seconds", "peak RSS MB", "+peak MB", "RSS MB")
    return markdown_table(
        header,
        [
            (
                row.request,
                row.status,
                f"{row.sent_mb:.1f}",
                f"{row.seconds:.2f}",
                f"{row.peak_kb / 1024:.1f}",
                f"{(row.peak_kb - baseline) / 1024:+.1f}",
                f"{row.rss_kb / 1024:.1f}",
            )
            for row in rows
        ],
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb-unsigned", type=int, default=200, help="default 200")
    parser.add_argument("--mb-signed", type=int, default=20, help="default 20")
    args = parser.parse_args(argv)
    rows, baseline = run(args.mb_unsigned, args.mb_signed)
    print(table(rows, baseline))
    print(f"\nbaseline peak RSS after the warm-up delivery: {baseline / 1024:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
