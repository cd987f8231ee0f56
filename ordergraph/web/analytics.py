"""Every KPI as a CSV download: ``/analytics/KPI.csv?from=...&to=...&groupBy=...``.

It needs the same bearer token as the API and serves admins and staff; staff of a team
get their team's figures (``core.scope.figures_team``). The columns are those of
``ordergraph report`` (docs/analytics.md).
"""

from __future__ import annotations

import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ordergraph.core import scope
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.limits import shown
from ordergraph.graphql.context import principal_for
from ordergraph.stages.analytics import export, kpis
from ordergraph.stages.analytics.limits import TEAM

STATUS = {ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403, ErrorCode.NOT_FOUND: 404}


def _refused(problem: Problem) -> JSONResponse:
    return JSONResponse(
        {"code": problem.code.value, "message": problem.message, "field": problem.field},
        status_code=STATUS.get(problem.code, 400),
    )


def _day(request: Request, name: str) -> datetime.date:
    text = request.query_params.get(name, "")
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        code = ErrorCode.REQUIRED if not text else ErrorCode.INVALID_VALUE
        raise DomainError.of(code, f"`{name}` must be a date like 2026-12-31.", name) from None


def _filter(request: Request, own: str | None) -> kpis.Filter:
    wanted = request.query_params.get("team")
    if wanted is not None and (problem := TEAM.problem(wanted, "team")) is not None:
        raise DomainError(problem)
    if own is not None and wanted not in (None, own):
        raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no team {shown(wanted)}.", "team")
    return kpis.Filter(team=own if own is not None else wanted)


async def kpi_csv(request: Request) -> Response:
    principal = await principal_for(request.headers.get("authorization"))
    if principal is None:
        return _refused(
            Problem(ErrorCode.UNAUTHENTICATED, "Send the header Authorization: Bearer <token>.")
        )
    kpi = request.path_params["kpi"]
    try:
        own = scope.figures_team(principal)
        if kpi not in export.KPIS:
            raise DomainError.of(ErrorCode.NOT_FOUND, f"There is no KPI {shown(kpi)}.", "kpi")
        group_by = request.query_params.get("groupBy", "day").lower()
        if group_by not in {g.value for g in kpis.GroupBy}:
            raise DomainError.of(
                ErrorCode.INVALID_VALUE, f"Cannot group by {shown(group_by)}.", "groupBy"
            )
        start, end = _day(request, "from"), _day(request, "to")
        found = await kpis.report(
            start, end, kpis.GroupBy(group_by), _filter(request, own), total=None, previous=None
        )
    except DomainError as error:
        return _refused(error.problems[0])
    columns, rows = export.table(kpi, found.groups)
    filename = f"{kpi}-{start}-{end}.csv"
    return Response(
        export.to_csv(columns, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


ROUTES = [Route("/analytics/{kpi}.csv", kpi_csv, methods=["GET"])]
