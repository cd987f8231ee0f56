"""Domain and persistence: no HTTP and no GraphQL in here."""
