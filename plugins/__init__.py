"""Built-in plugins. Each uses only ``ordergraph.plugin_api`` and registers through the
``ordergraph.plugins`` entry-point group, exactly as a third-party package would."""
