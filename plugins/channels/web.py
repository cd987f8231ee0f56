"""The web channel: storefronts submit orders through GraphQL ``Mutation.submitOrder``."""

from typing import Annotated

import strawberry

from ordergraph.plugin_api import (
    READERS,
    Info,
    PluginInfo,
    Role,
    SchemaExtension,
    SubmitOrderInput,
    SubmitOrderPayload,
    draft_from_input,
    hookimpl,
    payload_errors,
    require,
    submit_order,
)

CHANNEL = "web"


@strawberry.type
class WebMutation:
    @strawberry.mutation(
        description="Submit an order from the web channel; every problem comes back at once."
    )
    @payload_errors
    async def submit_order(
        self,
        info: Info,
        input: Annotated[SubmitOrderInput, strawberry.argument(description="The order.")],
    ) -> SubmitOrderPayload:
        principal = require(info, *READERS, Role.INTEGRATOR)
        result = await submit_order(info.context.rt, draft_from_input(input, CHANNEL), principal)
        return SubmitOrderPayload.of(result, principal)


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        category="channel",
        description="Orders submitted through GraphQL (Mutation.submitOrder).",
        enabled_by_default=True,
    )


@hookimpl
def graphql_schema() -> SchemaExtension:
    return SchemaExtension(mutation=(WebMutation,))
