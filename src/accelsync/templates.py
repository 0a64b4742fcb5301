"""Key templates such as `user:{id}` or `{user_id}_{ts}`: literal text and column references."""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import core_schema

_PART = re.compile(r"\{([^{}]*)\}")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Template:
    """A parsed template: `parts` alternate literal strings and column names, literal first."""

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("a template is a non-empty string such as 'user:{id}'")
        self.text = text
        self.literals: list[str] = []
        self.columns: list[str] = []
        position = 0
        for match in _PART.finditer(text):
            name = match.group(1).strip()
            if not _COLUMN.match(name):
                raise ValueError(f"template {text!r}: {{{match.group(1)}}} is not a column name")
            self.literals.append(text[position:match.start()])
            self.columns.append(name)
            position = match.end()
        tail = text[position:]
        if "{" in tail or "}" in tail or any("{" in lit or "}" in lit for lit in self.literals):
            raise ValueError(f"template {text!r} has an unmatched brace")
        self.literals.append(tail)
        if not self.columns:
            raise ValueError(f"template {text!r} uses no column; every row would get the same key")

    def render(self, row: dict) -> str:
        """Render one row (for tests and read-back; the hot path renders whole Arrow arrays)."""
        out = [self.literals[0]]
        for column, literal in zip(self.columns, self.literals[1:]):
            out.append(str(row[column]))
            out.append(literal)
        return "".join(out)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler):
        return core_schema.no_info_before_validator_function(
            lambda v: v if isinstance(v, Template) else Template(v),
            core_schema.any_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema, handler: GetJsonSchemaHandler):
        return {"type": "string", "description": "literal text with {column} references",
                "examples": ["user:{id}"]}
