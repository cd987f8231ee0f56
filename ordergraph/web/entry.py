"""What channels read from outside, bounded: request bodies capped while they are read,
and JSON bounded in depth, before anything is parsed into an order or stored.

The caps are ``[ordergraph] max_webhook_body_bytes`` and ``max_upload_bytes``; a body
over its cap is refused with 413 as soon as its ``Content-Length`` or its bytes pass the
cap, without reading the rest.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Message

from ordergraph.core.errors import DomainError, ErrorCode

# Containers inside containers; a platform's order is nested 5 or 6 levels deep.
MAX_JSON_DEPTH = 64
# Digits of a JSON integer; ids and quantities have fewer than 20.
MAX_INTEGER_DIGITS = 100


class BodyTooLarge(Exception):
    """A request body is (or announces that it is) larger than its cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The body is larger than {limit} bytes.")
        self.limit = limit

    def response(self) -> JSONResponse:
        """413, closing the connection, so that the server does not read the rest either."""
        return JSONResponse({"error": str(self)}, status_code=413, headers={"Connection": "close"})


def capped_request(request: Request, limit: int) -> Request:
    """The same request, whose body raises ``BodyTooLarge`` once more than ``limit`` bytes
    arrive (or at once, when ``Content-Length`` says more will). Read it with ``body()``,
    ``stream()`` or ``form()``: none of them reads past the cap."""
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(limit)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return Request(request.scope, receive)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; raises ``BodyTooLarge`` past it."""
    return await capped_request(request, limit).body()


async def read_webhook_body(request: Request) -> bytes:
    """The body of a webhook delivery, capped at ``[ordergraph] max_webhook_body_bytes``."""
    return await read_body(request, request.app.state.rt.settings.max_webhook_body_bytes)


def load_json(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON document with exact amounts (``Decimal``, never float), at most ``max_depth``
    arrays and objects deep, and no NUL character in any string (no database holds one).

    Raises ``DomainError`` (``INVALID_VALUE``) saying what is wrong.
    """
    too_deep = DomainError.of(
        ErrorCode.INVALID_VALUE,
        f"The body nests arrays and objects deeper than {max_depth} levels.",
    )
    try:
        data = json.loads(
            text, parse_float=Decimal, parse_int=_integer, parse_constant=_no_constant
        )
    except RecursionError:
        raise too_deep from None  # deeper than the parser goes, so deeper than max_depth
    except ValueError as exc:
        raise DomainError.of(ErrorCode.INVALID_VALUE, f"The body is not JSON ({exc}).") from None
    if not _within(data, max_depth):
        raise too_deep
    return data


def _integer(digits: str) -> int:
    length = len(digits.lstrip("-"))
    if length > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer of {length} digits; at most {MAX_INTEGER_DIGITS} are read")
    return int(digits)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _within(data: Any, max_depth: int) -> bool:
    """False when containers nest deeper than ``max_depth``; a NUL in a string raises."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            _refuse_nul(value, path)
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                return False
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip(".")
                if isinstance(key, str):
                    _refuse_nul(key, path)  # not ``where``: it would hold the NUL
                stack.append((item, depth + 1, where))
    return True


def _refuse_nul(value: str, path: str) -> None:
    if "\x00" in value:
        where = f" in {path}" if path else ""
        raise DomainError.of(
            ErrorCode.INVALID_VALUE, f"The body has a NUL character (\\u0000){where}."
        )
