"""Connecting to Temporal the same way in the API, the worker and the tests."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter

from core.config import Settings

# Custom search attributes so ops can filter walks and sessions in the Temporal Web UI.
SA_ACCOUNT_ID = SearchAttributeKey.for_keyword("RfAccountId")
SA_STATUS = SearchAttributeKey.for_keyword("RfStatus")
SA_SESSION_KIND = SearchAttributeKey.for_keyword("RfSessionKind")
SA_CATEGORY = SearchAttributeKey.for_keyword("RfCategory")
CUSTOM_SEARCH_ATTRIBUTES = (SA_ACCOUNT_ID, SA_STATUS, SA_SESSION_KIND, SA_CATEGORY)


def search_attribute_cli_args() -> list[str]:
    """`--search-attribute Name=Keyword` arguments for `temporal server start-dev`."""
    args: list[str] = []
    for key in CUSTOM_SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


async def connect_temporal(settings: Settings) -> Client:
    """A client with the pydantic converter; raises TimeoutError/RuntimeError when unreachable."""
    return await asyncio.wait_for(
        Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
        ),
        timeout=settings.temporal_connect_timeout_s,
    )
