"""Strict types on every JSON body field (issue 20 item 11): `true` is no integer, `"50"` no number, `1` no
boolean; UUIDs and ISO 8601 durations still arrive as strings, as JSON writes them."""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

import api.app  # noqa: F401 - imports every route's body models
from api.schemas.common import RequestBody
from tests.ai_sessions.support import open_session
from tests.helpers import make_user

# The wrong JSON values for each strict type: a lax model took every one of them.
WRONG: dict[type, tuple[Any, ...]] = {int: (True, False, "50", 50.0), float: (True, "0.5"), bool: (1, 0, "true")}


def _bodies(cls: type[BaseModel]) -> list[type[BaseModel]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_bodies(sub)]
    return found


def _scalar(annotation: Any) -> type | None:
    """int, float or bool when the field is one of them (optional or not), else None."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (
        annotation,)
    kinds = [o for o in options if o in WRONG]
    return kinds[0] if kinds else None


SCALAR_FIELDS = [(body, name, kind) for body in _bodies(RequestBody) for name, field in body.model_fields.items()
                 if (kind := _scalar(field.annotation)) is not None]


def test_every_body_has_its_numbers_and_flags_checked() -> None:
    names = {f"{body.__name__}.{name}" for body, name, _ in SCALAR_FIELDS}
    assert {"AccountPreferences.cw_resolved_status_id", "FixCreate.confidence_pct", "UpdateUserRequest.is_active",
            "CategoryPatch.in_scope"} <= names


@pytest.mark.parametrize(("body", "name", "kind"), SCALAR_FIELDS,
                         ids=[f"{b.__name__}.{n}" for b, n, _ in SCALAR_FIELDS])
def test_a_number_or_flag_field_takes_only_its_own_json_type(body: type[BaseModel], name: str, kind: type) -> None:
    for wrong in WRONG[kind]:
        with pytest.raises(ValidationError) as refused:
            body.model_validate({name: wrong})
        assert any(error["loc"][:1] == (name,) for error in refused.value.errors()), (name, wrong)


async def test_a_flag_as_a_status_id_is_refused_and_nothing_is_stored(client: AsyncClient, db: AsyncSession) -> None:
    admin = await make_user(client, db, role="admin")
    url = "/api/v1/account/settings"
    for wrong in (True, "42", 42.0):
        resp = await client.put(url, headers=admin["headers"], json={"cw_resolved_status_id": wrong})
        assert resp.status_code == 422, (wrong, resp.text)
        assert resp.json()["detail"][0]["loc"] == ["body", "cw_resolved_status_id"]
    stored = (await client.get(url, headers=admin["headers"])).json()
    assert stored.get("cw_resolved_status_id") is None
    # What JSON says plainly still works, durations and UUIDs as their strings included.
    ok = await client.put(url, headers=admin["headers"], json={
        "cw_resolved_status_id": 42, "pending_verification_reminders": ["PT2H"],
        "default_escalation_recipient_ids": [admin["user"]["id"]]})
    assert ok.status_code == 200, ok.text


async def test_a_confidence_must_be_a_number(client: AsyncClient, db: AsyncSession) -> None:
    engineer = await make_user(client, db, role="engineer")
    session_id = (await open_session(client, engineer["headers"]))["id"]
    url = f"/api/v1/ai-sessions/{session_id}/suggested-fixes"
    for wrong in (True, "50"):
        resp = await client.post(url, headers=engineer["headers"], json={"title": "Restart", "confidence_pct": wrong})
        assert resp.status_code == 422, (wrong, resp.text)
        assert resp.json()["detail"][0]["loc"] == ["body", "confidence_pct"]
    ok = await client.post(url, headers=engineer["headers"], json={"title": "Restart", "confidence_pct": 50})
    assert ok.status_code == 201, ok.text
    target = await client.post(f"/api/v1/ai-sessions/{session_id}/handoff", headers=engineer["headers"],
                               json={"intent": "park", "engineer_notes": "waiting", "target_user_id": True})
    assert target.status_code == 422
