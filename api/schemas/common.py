"""Shared request pieces: the base of every JSON body, paging parameters, and the error body."""

from __future__ import annotations

import math
import re
import uuid
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

# OFFSET is a bigint in Postgres; a bound well inside it keeps a huge offset a 422, not a driver overflow.
MAX_OFFSET = 1_000_000
# Far deeper than any of our bodies; deeper free-form JSON (settings) cannot be serialized back (500).
MAX_DEPTH = 32

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Rows to skip (at most {MAX_OFFSET:,}).")]


# Characters no text column or JSONB value can hold: NUL, and lone UTF-16 surrogates (json.loads turns "\ud800"
# into one; paired escapes become a single real character). Neither can be encoded as UTF-8 either.
UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with lone surrogates written as their escapes (\\ud800), so it can always be encoded in a reply."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def _char_problem(text: str) -> str | None:
    found = UNSTORABLE_CHARS.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000); remove it"
    return f"contains a lone UTF-16 surrogate ({printable(found.group())}), which is not valid Unicode; remove it"


def unstorable(value: Any, where: str = "") -> str | None:
    """Why `value` (parsed JSON) cannot be stored as given, or None when it can.

    Postgres rejects NUL characters and lone surrogates in text and JSONB, non-finite numbers would silently
    become null, and very deep nesting cannot be serialized back: refused up front rather than failing in the
    database, in a workflow's persistence retries, or while rendering the response. The message names the
    place (keys written printable), never the value.
    """
    stack: list[tuple[str, int, Any]] = [(where, 0, value)]  # iterative: nesting depth must not recurse
    while stack:
        path, depth, item = stack.pop()
        if depth > MAX_DEPTH:
            return f"{path} is nested more than {MAX_DEPTH} levels deep; flatten it"
        if isinstance(item, str):
            if problem := _char_problem(item):
                return f"{path or 'the value'} {problem}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path or 'the value'} must be a finite number, not {item}"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = printable(str(key))
                if isinstance(key, str) and (problem := _char_problem(key)):
                    return f"the key '{name}' under {path or 'the body'} {problem}"
                stack.append((f"{path}.{name}" if path else name, depth + 1, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}[{i}]", depth + 1, child) for i, child in enumerate(item))
    return None


FOLDED_NAME_MAX = 60  # the varchar(60) of category names (l1_categories.name, l1_flows.category, ...)


def folded_name(max_length: int = FOLDED_NAME_MAX) -> Any:
    """A name stored lower-cased: stripped, folded, then held to `max_length` *after* folding.

    Lower-casing can lengthen text ("İ" becomes "i" plus a combining dot), so a bound checked before folding
    let a 60-character name overflow varchar(60) (a 500). The pre-fold bound (also the schema's maxLength)
    only caps the work; the after-fold one is what the database sees.
    """

    def fold(value: str) -> str:
        folded = value.lower()
        if len(folded) > max_length:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters once lower-cased (this one has {actual})",
                {"max_length": max_length, "actual": len(folded)},
            )
        return folded

    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length),
                     AfterValidator(fold)]


# Category names and the like: `name: FoldedName`, and store the value as given (it is already lower-cased).
FoldedName = folded_name()


# JSON has no UUID type: a UUID arrives as its string, the one coercion strict bodies keep (`RequestBody`).
JsonUuid = Annotated[uuid.UUID, Strict(False)]


class RequestBody(BaseModel):
    """Base of every JSON request body: strict types, and no values the database cannot store (`unstorable`).

    Strict: a field takes its own JSON type only, so `true` is no integer (it was stored as 1), `"50"` no
    number and `1` no boolean; each is a 422 naming the field. Fields whose JSON form is a string (UUIDs,
    ISO 8601 durations and timestamps) opt back in to parsing it (`JsonUuid`, `Strict(False)`).
    """

    model_config = ConfigDict(strict=True)

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
    """Every error but 422: what went wrong and what to do about it (examples per status: api/errors.py)."""

    detail: str | dict[str, Any]


class ValidationIssue(BaseModel):
    """One problem with the request: where (`loc`), what (`msg`), and its kind (`type`); never the input."""

    loc: list[str | int]
    msg: str
    type: str
    ctx: dict[str, Any] | None = None


class ValidationErrorOut(BaseModel):
    """A 422: the request's problems, one per field, or (a string) why its Idempotency-Key cannot be used."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"detail": [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]},
        {"detail": "This Idempotency-Key was already used with a different request; use a new key"},
    ]})

    detail: list[ValidationIssue] | str
