"""HBase's naming rules, checked by the spec (`validate`) before any write."""

from __future__ import annotations

import pytest

from accelsync.spec import parse_spec


@pytest.mark.parametrize("target, message", [
    ({"table": "bad name", "family": "f"}, "target.table: 'bad name' is not an HBase table name "
                                           "(letters, digits, '_', '-', '.', optionally after 'namespace:')"),
    ({"table": "t", "family": "a/b"}, "target.family: 'a/b' is not a column family name "
                                      "(letters, digits, '_', '-', '.'; not starting with '.')"),
    ({"table": "t", "columns": {".f:q": "v"}}, "target.columns: '.f:q': the family may not start with '.'"),
])
def test_names_hbase_refuses_fail_before_any_write(target, message):
    from accelsync.errors import SpecError

    with pytest.raises(SpecError) as failure:  # at `validate`, before any run
        parse_spec({"name": "names", "source": {"type": "mysql", "table": "t"},
                    "target": {"type": "hbase", "row_key": "{k}", **target}}, "x.yaml")
    assert failure.value.lines() == [f"x.yaml: {message}"]
