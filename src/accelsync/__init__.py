"""accelsync: sync slow or streaming data into fast serving stores, gated by quality checks."""

__version__ = "0.1.0"
