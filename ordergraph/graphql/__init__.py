"""The one GraphQL schema: types, queries, mutations, subscriptions, and plugin fields."""
