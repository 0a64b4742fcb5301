"""Sources: one module per `source.type`, each a Source subclass registered by type."""
