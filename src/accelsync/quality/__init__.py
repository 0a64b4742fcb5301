"""Quality gates: the GX suite, reconciliation, read-back, freshness and timeliness."""
