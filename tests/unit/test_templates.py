"""Key and row-key templates: their parts and their errors."""

from __future__ import annotations

import pytest

from accelsync.templates import Template


def test_template_parts_and_errors():
    template = Template("user:{id}:{ city }")
    assert template.columns == ["id", "city"] and template.literals == ["user:", ":", ""]
    assert template.render({"id": 7, "city": "Paris"}) == "user:7:Paris"
    for bad, message in [("user:{id", "unmatched"), ("static", "uses no column"), ("{a b}", "not a column")]:
        with pytest.raises(ValueError, match=message):
            Template(bad)
