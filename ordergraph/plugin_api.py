"""The public API for plugins: everything a plugin imports from ordergraph comes from here.

Built-in plugins use nothing else, so a third-party package can do all they do.
"""

from ordergraph.core.auth import SYSTEM, Principal, Role
from ordergraph.core.errors import DomainError, ErrorCode, Problem
from ordergraph.core.jobs import enqueue_job
from ordergraph.core.orders import (
    LineDraft,
    LineView,
    OrderDraft,
    OrderEventView,
    OrderView,
    load_order,
    submit_order,
)
from ordergraph.core.plugins import PluginInfo, Setting, hookimpl
from ordergraph.core.runtime import Runtime
from ordergraph.core.statusgraph import StatusGraph, Transition
from ordergraph.core.transitions import transition_order
from ordergraph.graphql.context import OPERATORS, READERS, Info, require
from ordergraph.graphql.mutations import (
    OrderPayload,
    SubmitOrderInput,
    SubmitOrderPayload,
    draft_from_input,
)
from ordergraph.graphql.schema import SchemaExtension
from ordergraph.graphql.types import Order as OrderType
from ordergraph.graphql.types import UserError, user_errors

__all__ = [
    "OPERATORS",
    "READERS",
    "SYSTEM",
    "DomainError",
    "ErrorCode",
    "Info",
    "LineDraft",
    "LineView",
    "OrderDraft",
    "OrderEventView",
    "OrderPayload",
    "OrderType",
    "OrderView",
    "PluginInfo",
    "Principal",
    "Problem",
    "Role",
    "Runtime",
    "SchemaExtension",
    "Setting",
    "StatusGraph",
    "SubmitOrderInput",
    "SubmitOrderPayload",
    "Transition",
    "UserError",
    "draft_from_input",
    "enqueue_job",
    "hookimpl",
    "load_order",
    "require",
    "submit_order",
    "transition_order",
    "user_errors",
]
