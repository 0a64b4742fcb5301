"""Sinks: one module per `target.type`, each a Sink subclass registered by type."""
