"""The HTTP pages and routes beside the GraphQL API, one module per stage, mounted by
``ordergraph.app``: ``entry`` (bounded request bodies for channels' uploads and
webhooks), ``fulfilment`` (shipment labels), ``tracking`` (the customer's ``/track``
page), ``settlement`` (delivery confirmation and statement PDFs) and ``graphiql``."""
