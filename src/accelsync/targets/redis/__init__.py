"""Redis: keys from a template, hash / string / json values, upserted or swapped in as a version.
`spec` holds the options and their checks; `target` the writing, gate and publish; `resp` the
wire protocol; `codecs` value compression; `readers` the swap reader for services."""

from accelsync.targets.redis.spec import RedisTargetSpec as SPEC

IMPLEMENTATION = "accelsync.targets.redis.target:RedisTarget"

__all__ = ["IMPLEMENTATION", "SPEC"]
