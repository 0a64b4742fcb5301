"""Every connector the contract suite runs over: one line per source and per target.

A new connector is registered here with its harness (how the suite puts rows into the source,
or reads them back from the target, through the server's own client), and it gets every test of
tests/contract/test_sources.py or test_targets.py.
"""

from targets import DruidHarness, HbaseHarness, RedisHarness
from sources import KafkaHarness, LogsHarness, LogsIncrementalHarness, MysqlHarness, MysqlIncrementalHarness

SOURCES = [MysqlHarness, MysqlIncrementalHarness, KafkaHarness, LogsHarness, LogsIncrementalHarness]
TARGETS = [RedisHarness, HbaseHarness, DruidHarness]
