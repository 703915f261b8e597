"""Shared request pieces: the base of every JSON body, paging parameters, and the error body."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# OFFSET is a bigint in Postgres; a bound well inside it keeps a huge offset a 422, not a driver overflow.
MAX_OFFSET = 1_000_000
# Far deeper than any of our bodies; deeper free-form JSON (settings) cannot be serialized back (500).
MAX_DEPTH = 32

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Rows to skip (at most {MAX_OFFSET:,}).")]


def unstorable(value: Any, where: str = "") -> str | None:
    """Why `value` (parsed JSON) cannot be stored as given, or None when it can.

    Postgres rejects NUL characters in text and JSONB, non-finite numbers would silently become null, and
    very deep nesting cannot be serialized back: refused up front rather than failing in the database, in a
    workflow's persistence retries, or while rendering the response.
    """
    stack: list[tuple[str, int, Any]] = [(where, 0, value)]  # iterative: nesting depth must not recurse
    while stack:
        path, depth, item = stack.pop()
        if depth > MAX_DEPTH:
            return f"{path} is nested more than {MAX_DEPTH} levels deep; flatten it"
        if isinstance(item, str):
            if "\x00" in item:
                return f"{path or 'the value'} contains a NUL character (\\u0000); remove it"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path or 'the value'} must be a finite number, not {item}"
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return f"the key {key!r} under {path or 'the body'} contains a NUL character (\\u0000); remove it"
                stack.append((f"{path}.{key}" if path else str(key), depth + 1, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", depth + 1, child) for i, child in enumerate(item))
    return None


class RequestBody(BaseModel):
    """Base of every JSON request body: refuses values the database cannot store (see `unstorable`)."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        kept = data
        if isinstance(data, dict) and cls.model_config.get("extra") != "allow":
            kept = {key: value for key, value in data.items() if key in cls.model_fields}  # the rest is ignored
        problem = unstorable(kept)
        if problem:
            raise PydanticCustomError("unstorable_value", "{problem}", {"problem": problem})
        return data


class ErrorOut(BaseModel):
    """Every error but 422: what went wrong and what to do about it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "A user with this email already exists"}]})

    detail: str | dict[str, Any]
