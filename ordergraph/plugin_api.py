"""The public API for plugins: everything a plugin imports from ordergraph comes from here.

Built-in plugins use nothing else, so a third-party package can do all they do.
"""

import contextlib
from collections.abc import AsyncIterator

from starlette.requests import HTTPConnection

from ordergraph.core.assembly import build as build_runtime
from ordergraph.core.auth import SYSTEM, Principal, Role
from ordergraph.core.db import Sql, Upsert
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.jobs import enqueue_job
from ordergraph.core.limits import TextLimit, shown
from ordergraph.core.money import MAX_MINOR, is_iso_currency, minor_unit
from ordergraph.core.money import from_minor as money_from_minor
from ordergraph.core.money import to_minor as money_to_minor
from ordergraph.core.orders import (
    LineDraft,
    LineView,
    OrderDraft,
    OrderEventView,
    OrderView,
    load_order,
    submit_order,
)
from ordergraph.core.orders import validate as validate_order_draft
from ordergraph.core.periodic import Periodic
from ordergraph.core.plugins import PluginInfo, Setting, hookimpl
from ordergraph.core.runtime import Runtime
from ordergraph.core.scope import check_order as check_order_scope
from ordergraph.core.scope import may_access_order
from ordergraph.core.settings import Settings as ServiceSettings
from ordergraph.core.statusgraph import StatusGraph, Transition
from ordergraph.core.transitions import transition_order
from ordergraph.graphql.context import (
    OPERATORS,
    READERS,
    Info,
    page_size,
    principal_for,
    require,
    row_id,
)
from ordergraph.graphql.mutations import (
    OrderPayload,
    SubmitOrderInput,
    SubmitOrderPayload,
    draft_from_input,
)
from ordergraph.graphql.schema import SchemaExtension
from ordergraph.graphql.settlement.statements import bank_lines_page
from ordergraph.graphql.tracking.shipments import IncidentReason, TrackingStatus
from ordergraph.graphql.tracking.shipments import ShipmentTracking as ShipmentTrackingType
from ordergraph.graphql.tracking.shipments import shipment_tracking as load_shipment_tracking
from ordergraph.graphql.tracking.webhooks import webhook_deliveries_page
from ordergraph.graphql.types import (
    PAYLOAD_ERRORS,
    Connection,
    UserError,
    order_global_id,
    order_key,
    payload_errors,
    user_errors,
)
from ordergraph.graphql.types import Order as OrderType
from ordergraph.stages.entry.inbox import (
    IngestResult,
    find_order,
    ingest,
    remember_delivery,
    seen_delivery,
)
from ordergraph.stages.entry.inbox import receive as receive_delivery
from ordergraph.stages.entry.inbox import record as record_import_error
from ordergraph.stages.fulfilment import AssignmentChoice, Candidate, TeamView, open_quantities
from ordergraph.stages.fulfilment.labels import Booking, Estimate
from ordergraph.stages.review.inventory import available as available_stock
from ordergraph.stages.review.inventory import consume_quantities as consume_stock_quantities
from ordergraph.stages.review.inventory import quantities as stock_quantities
from ordergraph.stages.review.inventory import release as release_stock
from ordergraph.stages.review.inventory import release_quantities as release_stock_quantities
from ordergraph.stages.review.inventory import reserve as reserve_stock
from ordergraph.stages.review.lookups import (
    CustomerView,
    Exposure,
    ProductView,
    approved_order_count,
    customer_exposure,
    get_customer,
    get_products,
)
from ordergraph.stages.review.pipeline import Finding
from ordergraph.stages.settlement import (
    Adjustment,
    ChargeLine,
    SettlementConfig,
    confirmation_link,
    statement_link,
)
from ordergraph.stages.settlement import config_of as settlement_config
from ordergraph.stages.settlement.limits import PAYMENT_REFERENCE, STATEMENT_NUMBER
from ordergraph.stages.settlement.payments import Held as HeldMovement
from ordergraph.stages.settlement.payments import record_entry as record_ledger_entry
from ordergraph.stages.settlement.payments import record_reported as record_reported_movement
from ordergraph.stages.settlement.payments import refund_key as refund_ledger_key
from ordergraph.stages.settlement.pdf import render_statement as render_statement_pdf
from ordergraph.stages.settlement.promotions import PromotionContext, PromotionKind
from ordergraph.stages.settlement.reconciliation import BankCredit
from ordergraph.stages.settlement.reconciliation import import_credits as import_bank_credits
from ordergraph.stages.settlement.reconciliation import match_line as match_bank_line
from ordergraph.stages.settlement.statements import (
    StatementView,
    statement_by_number,
)
from ordergraph.stages.settlement.statements import (
    statement_for_order_number as load_order_statement,
)
from ordergraph.stages.tracking import webhook_endpoints
from ordergraph.stages.tracking.notifications import attempt as notification_attempt
from ordergraph.stages.tracking.notifications import load_order_event
from ordergraph.stages.tracking.notifications import record_outcome as record_notification
from ordergraph.stages.tracking.updates import (
    Location,
    TrackingEvent,
    TrackingUpdate,
    find_shipment,
    order_tracking,
    set_promised_date,
    shipment_row,
)
from ordergraph.stages.tracking.updates import ingest as ingest_tracking
from ordergraph.stages.tracking.webhook_endpoints import EndpointView
from ordergraph.web.entry import (
    BodyTooLarge,
    capped_request,
    load_json,
    read_body,
    read_webhook_body,
)

__all__ = [
    "MAX_MINOR",
    "OPERATORS",
    "PAYLOAD_ERRORS",
    "PAYMENT_REFERENCE",
    "READERS",
    "STATEMENT_NUMBER",
    "SYSTEM",
    "Adjustment",
    "AssignmentChoice",
    "BankCredit",
    "BodyTooLarge",
    "Booking",
    "Candidate",
    "ChargeLine",
    "Connection",
    "CustomerView",
    "DomainError",
    "EndpointView",
    "ErrorCode",
    "Estimate",
    "Exposure",
    "Finding",
    "HeldMovement",
    "IncidentReason",
    "Info",
    "IngestResult",
    "LineDraft",
    "LineView",
    "Location",
    "OrderDraft",
    "OrderEventView",
    "OrderPayload",
    "OrderType",
    "OrderView",
    "Periodic",
    "PluginInfo",
    "Principal",
    "Problem",
    "ProductView",
    "PromotionContext",
    "PromotionKind",
    "Role",
    "Runtime",
    "SchemaExtension",
    "ServiceSettings",
    "Setting",
    "SettlementConfig",
    "ShipmentTrackingType",
    "Sql",
    "StatementView",
    "StatusGraph",
    "SubmitOrderInput",
    "SubmitOrderPayload",
    "TeamView",
    "TextLimit",
    "TrackingEvent",
    "TrackingStatus",
    "TrackingUpdate",
    "Transition",
    "Upsert",
    "UserError",
    "approved_order_count",
    "available_stock",
    "bank_lines_page",
    "capped_request",
    "check_order_scope",
    "confirmation_link",
    "consume_stock_quantities",
    "customer_exposure",
    "draft_from_input",
    "enqueue_job",
    "find_order",
    "find_shipment",
    "get_customer",
    "get_products",
    "hookimpl",
    "import_bank_credits",
    "ingest",
    "ingest_tracking",
    "is_iso_currency",
    "load_json",
    "load_order",
    "load_order_event",
    "load_order_statement",
    "load_shipment_tracking",
    "match_bank_line",
    "may_access_order",
    "minor_unit",
    "money_from_minor",
    "money_to_minor",
    "notification_attempt",
    "open_quantities",
    "open_runtime",
    "order_global_id",
    "order_key",
    "order_tracking",
    "page_size",
    "payload_errors",
    "principal_for",
    "read_body",
    "read_webhook_body",
    "receive_delivery",
    "record_import_error",
    "record_ledger_entry",
    "record_notification",
    "record_reported_movement",
    "refund_ledger_key",
    "release_stock",
    "release_stock_quantities",
    "remember_delivery",
    "render_statement_pdf",
    "require",
    "reserve_stock",
    "row_id",
    "runtime_of",
    "seen_delivery",
    "set_promised_date",
    "settlement_config",
    "shipment_row",
    "shown",
    "statement_by_number",
    "statement_link",
    "stock_quantities",
    "submit_order",
    "transition_order",
    "user_errors",
    "validate_order_draft",
    "webhook_deliveries_page",
    "webhook_endpoints",
]


def runtime_of(request: HTTPConnection) -> Runtime:
    """The running service's ``Runtime``, for a plugin's HTTP route."""
    return request.app.state.rt


@contextlib.asynccontextmanager
async def open_runtime(settings: ServiceSettings) -> AsyncIterator[Runtime]:
    """The service's ``Runtime`` for a CLI command: database and plugins, no job runner.

    The jobs a command causes (reviews, notifications, events) are written to the outbox
    in the same transactions as its changes; the running service (or ``ordergraph
    worker``) runs them, so its subscribers see the events.
    """
    rt = build_runtime(settings)
    await rt.open(run_jobs=False)
    try:
        yield rt
    finally:
        await rt.close()
