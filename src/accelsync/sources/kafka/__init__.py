"""Kafka: a topic read as a bounded batch, committed at publish. `spec` holds the options and
their checks; `source` planning, reading and committing; `client` the broker calls; `messages`
turning messages into Arrow batches."""

from accelsync.sources.kafka.spec import KafkaSourceSpec as SPEC

IMPLEMENTATION = "accelsync.sources.kafka.source:KafkaSource"

__all__ = ["IMPLEMENTATION", "SPEC"]
