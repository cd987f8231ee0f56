"""ordergraph: an order management system with a small core, a status graph and plugins."""

__version__ = "0.1.0"
