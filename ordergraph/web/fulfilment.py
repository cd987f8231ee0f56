"""The shipment label bought from a carrier, for staff to print: ``/shipments/ID/label``.

It needs the same bearer token as the API; staff of a team get their team's labels
only, and anyone else is told there is no such label.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordergraph.core.errors import DomainError, ErrorCode
from ordergraph.core.limits import parse_id, shown
from ordergraph.graphql.context import principal_for
from ordergraph.stages.fulfilment.labels import label_for

MEDIA_TYPES = {"PDF": "application/pdf", "ZPL": "application/x-zpl", "PNG": "image/png"}


async def shipment_label(request: Request) -> Response:
    principal = await principal_for(request.headers.get("authorization"))
    if principal is None:
        return JSONResponse(
            {
                "code": "UNAUTHENTICATED",
                "message": "Send the header Authorization: Bearer <token>.",
            },
            status_code=401,
        )
    raw_id = request.path_params["id"]
    shipment_id = parse_id(raw_id)
    try:
        if shipment_id is None:
            raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no shipment {shown(raw_id)}.")
        label = await label_for(shipment_id, principal)
    except DomainError as error:
        return JSONResponse({"code": "NOT_FOUND", "message": str(error)}, status_code=404)
    extension = label.format.lower() or "pdf"
    return Response(
        label.content,
        media_type=MEDIA_TYPES.get(label.format, "application/octet-stream"),
        headers={"Content-Disposition": f'inline; filename="{label.tracking_number}.{extension}"'},
    )


ROUTES = [Route("/shipments/{id}/label", shipment_label, methods=["GET"])]
