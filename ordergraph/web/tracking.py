"""``/track``: the customer's tracking page, rendered on the server.

A form (order number, and e-mail or postal code) posts to itself; the answer is the
same as ``trackOrder``'s, as plain HTML that works without JavaScript and reads on a
phone. A lookup by e-mail of a delivered order also offers the signed delivery
confirmation (a button, and the page to report a problem), and once its statement is
issued a signed link to the PDF; a lookup by postal code offers neither, since a postal
code is no proof of being the customer.

Where JavaScript is on, the page opens ``POST /track/live`` with the same form: a stream
of the answer redrawn (one JSON line each) whenever an event of the order is announced
on the event bus, so a new tracking event shows without a reload.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ordergraph.core.errors import DomainError
from ordergraph.core.events import SubscriberTooSlow
from ordergraph.core.runtime import Runtime
from ordergraph.stages.settlement import config_of
from ordergraph.stages.settlement.links import CONFIRM_PATH, confirmation_token, statement_path
from ordergraph.stages.settlement.statements import SETTLING, statement_of
from ordergraph.stages.tracking import lookup

# A live stream ends after this long and the page opens another; a server shutting down
# waits for open streams at most this long.
STREAM_SECONDS = 300
STATUS_WORDS = {
    "pending": "Label created",
    "picked_up": "Picked up",
    "in_transit": "On its way",
    "out_for_delivery": "Out for delivery",
    "ready_for_pickup": "Ready for pickup",
    "delivered": "Delivered",
    "delivery_failed": "Delivery attempt failed",
    "delivery_delayed": "Delayed",
    "on_hold": "On hold",
    "return_to_sender": "Returning to sender",
    "cancelled": "Cancelled",
    "unknown": "No news yet",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:40rem;padding:1rem;line-height:1.4}
label{display:block;margin-top:.75rem}
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}ol{padding-left:1.2rem}
li{margin:.5rem 0}.when{color:#555;font-size:.9rem}.status{font-weight:600}
h1,h2,h3,p,li{overflow-wrap:anywhere}.actions{border-top:1px solid #ccc;margin-top:1rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _form(number: str = "", email: str = "", postal_code: str = "", note: str = "") -> str:
    return (
        '<form method="post" action="/track">'
        f"{f'<p role=alert>{_e(note)}</p>' if note else ''}"
        '<label>Order number<input name="number" required value="'
        f'{_e(number)}" autocomplete="off"></label>'
        f'<label>E-mail<input name="email" type="email" value="{_e(email)}"></label>'
        '<label>or delivery postal code<input name="postalCode" value="'
        f'{_e(postal_code)}"></label><button>Track</button></form>'
    )


def _result(found: lookup.PublicTracking, actions: str = "") -> str:
    parts = [f"<h2>Order {_e(found.number)}: {_e(found.status.title())}</h2>", actions]
    if not found.shipments:
        parts.append("<p>Not shipped yet.</p>")
    for n, shipment in enumerate(found.shipments, 1):
        estimate = shipment.estimate
        eta = estimate.window_to or estimate.estimated_delivery
        parts.append(
            f"<section><h3>Parcel {n} ({_e(shipment.carrier)}): "
            f'<span class="status">{_e(STATUS_WORDS.get(shipment.status, shipment.status))}'
            "</span></h3>"
        )
        if shipment.delivered_at:
            parts.append(
                f"<p>Delivered {_e(shipment.delivered_at.strftime('%d %b %Y %H:%M'))} UTC</p>"
            )
        elif eta:
            parts.append(f"<p>Expected by {_e(eta.strftime('%d %b %Y'))}</p>")
        parts.append("<ol>")
        for event in shipment.events:
            place = ", ".join(p for p in (event.location.city, event.location.country) if p)
            parts.append(
                f'<li><span class="when">{_e(event.local_time.strftime("%d %b %Y %H:%M"))} local'
                f"</span><br>{_e(event.description or STATUS_WORDS.get(event.status, ''))}"
                f"{f' &middot; {_e(place)}' if place else ''}</li>"
            )
        parts.append("</ol></section>")
    return "".join(parts)


async def _actions(rt: Runtime, found: lookup.PublicTracking) -> str:
    """For the customer (a lookup by e-mail): confirm a delivered order or report a
    problem, and download the statement once it is issued. Signed links; none without
    the settlement stage's ``link_secret``."""
    config = config_of(rt)
    if found.status == "DELIVERED":
        token = confirmation_token(config, found.order_id)
        if token is None:
            return ""
        return (
            '<section class="actions"><h3>Did everything arrive?</h3>'
            f'<form method="post" action="{CONFIRM_PATH}">'
            f'<input type="hidden" name="token" value="{_e(token)}">'
            "<button>Yes, confirm delivery</button></form>"
            f'<p><a href="{CONFIRM_PATH}?token={_e(token)}">Something wrong? '
            "Report a problem</a></p></section>"
        )
    if found.status in SETTLING:
        statement = await statement_of(found.order_id)
        path = statement_path(config, statement.number) if statement else None
        if path:
            return (
                f'<section class="actions"><p><a href="{_e(path)}">Your statement (PDF)</a>'
                "</p></section>"
            )
    return ""


async def _answer(number: str, email: str, postal_code: str) -> lookup.PublicTracking | None:
    return await lookup.look_up(number, email=email or None, postal_code=postal_code or None)


async def _rendered(rt: Runtime, found: lookup.PublicTracking, by_email: bool) -> str:
    return _result(found, await _actions(rt, found) if by_email else "")


_LIVE = """
<script>
const ask = %s;
const result = document.getElementById("result");
async function follow(delay) {
  try {
    const form = new FormData();
    for (const [k, v] of Object.entries(ask)) if (v) form.append(k, v);
    const response = await fetch("/track/live", {method: "POST", body: form});
    if (!response.ok) return;  // no longer found, or rate limited: the page stays as it is
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\\n")) >= 0) {
        const answer = JSON.parse(buffer.slice(0, end));
        buffer = buffer.slice(end + 1);
        if (result.innerHTML !== answer.html) result.innerHTML = answer.html;
        document.body.dataset.status = answer.status;
      }
    }
    delay = 1000;
  } catch (error) {
    delay = Math.min(delay * 2, 60000);
  }
  setTimeout(() => follow(delay), delay);
}
follow(1000);
</script>
"""


def _page(
    form: str, result: str = "", status: str = "", live: dict[str, str] | None = None
) -> HTMLResponse:
    script = _LIVE % json.dumps(live) if live else ""
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Track your order</title><style>{_STYLE}</style></head>"
        f'<body data-status="{_e(status)}"><h1>Track your order</h1>'
        f'<div id="result" aria-live="polite">{result}</div>{form}{script}</body></html>'
    )


def _asked(form: FormData) -> tuple[str, str, str]:
    """The number, e-mail and postal code a form asks about."""
    number, email, postal_code = (
        str(form.get(name) or "").strip() for name in ("number", "email", "postalCode")
    )
    return number, email, postal_code


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def track_page(request: Request) -> HTMLResponse:
    if request.method == "GET":
        # Links from the confirmation page and messages name the order: the form starts with it.
        number = request.query_params.get("number", "")[: lookup.MAX_INPUT]
        return _page(_form(number.strip()))
    rt: Runtime = request.app.state.rt
    number, email, postal_code = _asked(await request.form())
    try:
        await lookup.limit_lookup(rt, _client(request), number)
    except DomainError as error:
        return _page(_form(number, email, postal_code, error.problems[0].message))
    found = await _answer(number, email, postal_code)
    if found is None:
        note = "We found no order with that number and e-mail or postal code."
        return _page(_form(number, email, postal_code, note))
    live = {"number": number, "email": email, "postalCode": postal_code}
    result = await _rendered(rt, found, bool(email))
    return _page(_form(number, email, postal_code), result, found.status, live)


async def live_answers(request: Request) -> Response:
    """``POST /track/live``: the form's lookup, then its answer as one JSON line
    (``html``, ``status``) now and after every event of the order.

    The page that opens it was counted as a lookup already, so a lookup that finds the
    order is not counted again (a reload costs one lookup); one that finds nothing is.
    Either is refused while the client or the order is over its limit, so this route
    tells a guesser no more than the page does."""
    rt: Runtime = request.app.state.rt
    number, email, postal_code = _asked(await request.form())
    try:
        await lookup.limit_lookup(rt, _client(request), number, count=False)
        found = await _answer(number, email, postal_code)
        if found is None:
            await lookup.limit_lookup(rt, _client(request), number)
    except DomainError as error:
        problem = error.problems[0]
        return JSONResponse({"code": problem.code.value, "message": problem.message}, 429)
    if found is None:
        return JSONResponse({"code": "NOT_FOUND", "message": "No such order."}, 404)
    return StreamingResponse(
        _answers(rt, found.order_id, number, email, postal_code),
        media_type="application/x-ndjson",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _answers(
    rt: Runtime, order_id: int, number: str, email: str, postal_code: str
) -> AsyncIterator[str]:
    async def line() -> str | None:
        found = await _answer(number, email, postal_code)
        if found is None:
            return None
        html_now = await _rendered(rt, found, bool(email))
        return json.dumps({"html": html_now, "status": found.status}) + "\n"

    loop = asyncio.get_running_loop()
    deadline = loop.time() + STREAM_SECONDS
    async with rt.bus.subscribe() as messages:
        # Anything that happened between the page and this stream shows at once.
        first = await line()
        if first is None:
            return
        yield first
        while (left := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(left):
                    message = await anext(messages)
            except (TimeoutError, StopAsyncIteration, SubscriberTooSlow):
                return  # the page opens another stream
            if message["order_id"] == order_id:
                answer = await line()
                if answer is None:
                    return
                yield answer


ROUTES = [
    Route("/track", track_page, methods=["GET", "POST"]),
    Route("/track/live", live_answers, methods=["POST"]),
]
