"""A carrier's API on 127.0.0.1, answering in the carrier's documented format.

A real HTTP server (uvicorn) that the karrio-based plugins reach through their
``server_url`` setting: it issues OAuth tokens, answers tracking requests from the
scans a test gives it, and can be told to fail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fpdf import FPDF
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

TOKEN = "local-token"


@dataclass
class CarrierState:
    """What the server knows (tracking number -> the carrier's track result) and saw."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[list[str]] = field(default_factory=list)
    failures_left: int = 0
    # Shipments booked (the request bodies), and how many booking requests to refuse.
    bookings: list[dict[str, Any]] = field(default_factory=list)
    booking_failures_left: int = 0
    # Seconds the Ship API takes to answer (after it has booked).
    booking_delay: float = 0.0
    labels: dict[str, bytes] = field(default_factory=dict)


def label_pdf(tracking_number: str) -> bytes:
    """A one-page PDF, as a carrier's label is."""
    pdf = FPDF(format=(288, 432), unit="pt")
    pdf.add_page()
    pdf.set_font("Helvetica", size=24)
    pdf.cell(text=f"TRK {tracking_number}")
    return bytes(pdf.output())


def fedex_app(state: CarrierState) -> Starlette:
    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != "client_credentials" or not form.get("client_id"):
            return JSONResponse({"errors": [{"code": "NOT.AUTHORIZED.ERROR"}]}, status_code=401)
        return JSONResponse(
            {"access_token": TOKEN, "token_type": "bearer", "expires_in": 3599, "scope": "CXS"}
        )

    async def track(request: Request) -> JSONResponse | PlainTextResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"errors": [{"code": "NOT.AUTHORIZED.ERROR"}]}, status_code=401)
        if state.failures_left:
            state.failures_left -= 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        body = await request.json()
        numbers = [i["trackingNumberInfo"]["trackingNumber"] for i in body["trackingInfo"]]
        state.requests.append(numbers)
        complete = []
        for number in numbers:
            if number in state.results:
                result = {"trackingNumberInfo": {"trackingNumber": number, "carrierCode": "FDXE"}}
                complete.append(
                    {
                        "trackingNumber": number,
                        "trackResults": [{**result, **state.results[number]}],
                    }
                )
            else:
                complete.append(
                    {
                        "trackingNumber": number,
                        "trackResults": [
                            {
                                "trackingNumberInfo": {"trackingNumber": number},
                                "error": {
                                    "code": "TRACKING.TRACKINGNUMBER.NOTFOUND",
                                    "message": "Tracking number cannot be found.",
                                },
                            }
                        ],
                    }
                )
        return JSONResponse(
            {"transactionId": "local", "output": {"completeTrackResults": complete}}
        )

    async def ship(request: Request) -> JSONResponse:
        """The Ship API: one master tracking number, a number and a base64 PDF label per
        package, and the delivery date."""
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"errors": [{"code": "NOT.AUTHORIZED.ERROR"}]}, status_code=401)
        body = await request.json()
        if state.booking_failures_left:
            state.booking_failures_left -= 1
            return JSONResponse(
                {
                    "transactionId": "local",
                    "errors": [
                        {
                            "code": "SHIPPER.POSTALSTATE.MISMATCH",
                            "message": "Shipper Postal-State Mismatch.",
                        }
                    ],
                },
                status_code=400,
            )
        state.bookings.append(body)
        await asyncio.sleep(state.booking_delay)
        first = 794_900_000_000 + 10 * len(state.bookings)
        packages = body["requestedShipment"]["requestedPackageLineItems"]
        numbers = [str(first + i) for i in range(len(packages))]
        pieces = []
        for i, number in enumerate(numbers):
            state.labels[number] = label_pdf(number)
            pieces.append(
                {
                    "masterTrackingNumber": numbers[0],
                    "trackingNumber": number,
                    "deliveryDatestamp": "2024-04-29",
                    "serviceCategory": "GROUND",
                    "trackingIdType": "FEDEX",
                    "packageSequenceNumber": i + 1,
                    "packageDocuments": [
                        {
                            "contentType": "LABEL",
                            "copiesToPrint": 1,
                            "docType": "PDF",
                            "encodedLabel": base64.b64encode(state.labels[number]).decode(),
                        }
                    ],
                }
            )
        return JSONResponse(
            {
                "transactionId": "local",
                "output": {
                    "transactionShipments": [
                        {
                            "serviceType": body["requestedShipment"]["serviceType"],
                            "shipDatestamp": body["requestedShipment"]["shipDatestamp"],
                            "serviceCategory": "GROUND",
                            "masterTrackingNumber": numbers[0],
                            "pieceResponses": pieces,
                            "completedShipmentDetail": {
                                "carrierCode": "FDXG",
                                "operationalDetail": {
                                    "deliveryDate": "2024-04-29",
                                    "deliveryDay": "MON",
                                },
                            },
                        }
                    ]
                },
            }
        )

    return Starlette(
        routes=[
            Route("/oauth/token", token, methods=["POST"]),
            Route("/track/v1/trackingnumbers", track, methods=["POST"]),
            Route("/ship/v1/shipments", ship, methods=["POST"]),
        ]
    )


def ups_app(state: CarrierState) -> Starlette:
    async def token(request: Request) -> JSONResponse:
        if not request.headers.get("authorization", "").startswith("Basic "):
            return JSONResponse({"response": {"errors": [{"code": "250002"}]}}, status_code=401)
        issued = int(time.time() * 1000)
        return JSONResponse(
            {
                "access_token": TOKEN,
                "token_type": "Bearer",
                "issued_at": str(issued),
                "expires_in": "14399",
                "status": "approved",
            }
        )

    async def track(request: Request) -> JSONResponse | PlainTextResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"response": {"errors": [{"code": "250002"}]}}, status_code=401)
        if state.failures_left:
            state.failures_left -= 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        number = request.path_params["number"]
        state.requests.append([number])
        if number not in state.results:
            return JSONResponse(
                {
                    "response": {
                        "errors": [
                            {"code": "151044", "message": "No tracking information available"}
                        ]
                    }
                },
                status_code=404,
            )
        package = {"trackingNumber": number, **state.results[number]}
        return JSONResponse(
            {"trackResponse": {"shipment": [{"inquiryNumber": number, "package": [package]}]}}
        )

    return Starlette(
        routes=[
            Route("/security/v1/oauth/token", token, methods=["POST"]),
            Route("/api/track/v1/details/{number}", track, methods=["GET"]),
        ]
    )


def usps_app(state: CarrierState) -> Starlette:
    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != "client_credentials" or not form.get("client_secret"):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 28799})

    async def track(request: Request) -> JSONResponse | PlainTextResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse(
                {"error": {"code": "401", "message": "Unauthorized"}}, status_code=401
            )
        if state.failures_left:
            state.failures_left -= 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        number = request.path_params["number"]
        state.requests.append([number])
        if number not in state.results:
            return JSONResponse(
                {"error": {"code": "404", "message": "Tracking number not found", "errors": []}},
                status_code=404,
            )
        return JSONResponse({"trackingNumber": number, **state.results[number]})

    return Starlette(
        routes=[
            Route("/oauth2/v3/token", token, methods=["POST"]),
            Route("/tracking/v3/tracking/{number}", track, methods=["GET"]),
        ]
    )


DHL_SITE_ID = "site"
DHL_PASSWORD = "password1"


def _dhl_response(root: str, body: str) -> Response:
    return Response(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<res:{root} xmlns:res="http://www.dhl.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<Response><ServiceHeader><MessageTime>2024-04-27T10:00:00+00:00</MessageTime>"
        "<MessageReference>1234567890123456789012345678901</MessageReference>"
        f"<SiteID>{DHL_SITE_ID}</SiteID></ServiceHeader></Response>{body}</res:{root}>",
        media_type="application/xml",
    )


RECORDED = Path(__file__).parent / "recorded"


def recorded_dhl_shipments(name: str) -> dict[str, str]:
    """The ``ShipmentInfo`` XML per AWB number of a tracking answer DHL gave, as karrio
    recorded it for its own tests (``modules/connectors/dhl_express/tests/dhl_express/
    test_tracking.py``), kept in ``tests/recorded/<name>.xml``: for ``state.results``."""
    root = ET.parse(RECORDED / f"{name}.xml").getroot()
    return {
        awb.findtext("AWBNumber") or "": ET.tostring(info, encoding="unicode")
        for awb in root.iter("AWBInfo")
        if (info := awb.find("ShipmentInfo")) is not None
    }


def dhl_app(state: CarrierState) -> Starlette:
    """DHL XML Services: one servlet for every request, the site id and password in the
    request's header. ``state.results`` holds, per AWB number, the ``ShipmentInfo`` XML."""

    async def servlet(request: Request) -> Response:
        request_xml = ET.fromstring(await request.body())
        header = request_xml.find("./Request/ServiceHeader")
        if (
            header is None
            or header.findtext("SiteID") != DHL_SITE_ID
            or header.findtext("Password") != DHL_PASSWORD
        ):
            return _dhl_response(
                "ShipmentTrackingErrorResponse",
                "<Status><ActionStatus>Failure</ActionStatus><Condition>"
                "<ConditionCode>100</ConditionCode><ConditionData>Invalid SiteID or Password"
                "</ConditionData></Condition></Status>",
            )
        if state.failures_left:
            state.failures_left -= 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        numbers = [n.text or "" for n in request_xml.findall("AWBNumber")]
        state.requests.append(numbers)
        infos = []
        for number in numbers:
            if number in state.results:
                infos.append(
                    f"<AWBInfo><AWBNumber>{number}</AWBNumber><Status><ActionStatus>success"
                    f"</ActionStatus></Status>{state.results[number]}</AWBInfo>"
                )
            else:
                infos.append(
                    "<AWBInfo><AWBNumber/><Status><ActionStatus>No Shipments Found"
                    "</ActionStatus><Condition><ConditionCode>103</ConditionCode>"
                    f"<ConditionData>No Shipments Found for AWBNumber {number}</ConditionData>"
                    "</Condition></Status></AWBInfo>"
                )
        return _dhl_response("TrackingResponse", "".join(infos) + "<LanguageCode>en</LanguageCode>")

    return Starlette(routes=[Route("/XMLShippingServlet", servlet, methods=["POST"])])


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1; yields its base URL.

    The socket listens before the server starts, so a request made at once waits in
    the backlog instead of being refused.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
