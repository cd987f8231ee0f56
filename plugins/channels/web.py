"""The web channel: storefronts submit orders through GraphQL ``Mutation.submitOrder``."""

import strawberry

from ordergraph.plugin_api import (
    READERS,
    DomainError,
    Info,
    PluginInfo,
    Role,
    SchemaExtension,
    SubmitOrderInput,
    SubmitOrderPayload,
    draft_from_input,
    hookimpl,
    require,
    submit_order,
    user_errors,
)

CHANNEL = "web"


@strawberry.type
class WebMutation:
    @strawberry.mutation(
        description="Submit an order from the web channel; every problem comes back at once."
    )
    async def submit_order(self, info: Info, input: SubmitOrderInput) -> SubmitOrderPayload:
        principal = require(info, *READERS, Role.INTEGRATOR)
        try:
            result = await submit_order(
                info.context.rt, draft_from_input(input, CHANNEL), principal
            )
        except DomainError as error:
            return SubmitOrderPayload(errors=user_errors(error))
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
