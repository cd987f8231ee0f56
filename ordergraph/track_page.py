"""``/track``: the customer's tracking page, rendered on the server.

A form (order number, and e-mail or postal code) posts to itself; the answer is the
same as ``trackOrder``'s, as plain HTML that works without JavaScript and reads on a
phone. Where JavaScript is on, the page asks ``trackOrder`` again every two minutes
and redraws itself.
"""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ordergraph.core import tracking_lookup
from ordergraph.core.errors import DomainError

REFRESH_SECONDS = 120
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


def _result(found: tracking_lookup.PublicTracking) -> str:
    parts = [f"<h2>Order {_e(found.number)}: {_e(found.status.title())}</h2>"]
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
                f'<li><span class="when">{_e(event.local_time.strftime("%d %b %H:%M"))} local'
                f"</span><br>{_e(event.description or STATUS_WORDS.get(event.status, ''))}"
                f"{f' &middot; {_e(place)}' if place else ''}</li>"
            )
        parts.append("</ol></section>")
    return "".join(parts)


_LIVE = """
<script>
const ask = %s;
const query = `query($number: String!, $email: String, $postalCode: String) {
  trackOrder(number: $number, email: $email, postalCode: $postalCode) { status } }`;
setInterval(async () => {
  const r = await fetch("/graphql", {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({query, variables: ask})});
  const body = await r.json();
  const now = body.data && body.data.trackOrder;
  if (now && now.status !== document.body.dataset.status) {
    const form = new FormData(); for (const [k, v] of Object.entries(ask)) if (v) form.append(k, v);
    const page = await fetch("/track", {method: "POST", body: form});
    document.documentElement.innerHTML = await page.text();
  }
}, %d);
</script>
"""


def _page(body: str, status: str = "", live: dict[str, str] | None = None) -> HTMLResponse:
    script = _LIVE % (json.dumps(live), REFRESH_SECONDS * 1000) if live else ""
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Track your order</title><style>{_STYLE}</style></head>"
        f'<body data-status="{_e(status)}"><h1>Track your order</h1>{body}{script}</body></html>'
    )


async def track_page(request: Request) -> HTMLResponse:
    if request.method == "GET":
        return _page(_form())
    form = await request.form()
    number = str(form.get("number") or "").strip()
    email = str(form.get("email") or "").strip()
    postal_code = str(form.get("postalCode") or "").strip()
    client = request.client.host if request.client else "unknown"
    try:
        await tracking_lookup.limits_for(request.app.state.rt).check(client, number)
    except DomainError as error:
        return _page(_form(number, email, postal_code, error.problems[0].message))
    found = await tracking_lookup.look_up(
        number, email=email or None, postal_code=postal_code or None
    )
    if found is None:
        note = "We found no order with that number and e-mail or postal code."
        return _page(_form(number, email, postal_code, note))
    live = {"number": number, "email": email, "postalCode": postal_code}
    return _page(_result(found) + _form(number, email, postal_code), found.status, live)


ROUTES = [Route("/track", track_page, methods=["GET", "POST"])]
