"""Custom search attributes, so ops can filter walks and sessions in the Temporal Web UI.

They live with the contracts because workflow code upserts them and may import only contracts.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SA_ACCOUNT_ID = SearchAttributeKey.for_keyword("RfAccountId")
SA_STATUS = SearchAttributeKey.for_keyword("RfStatus")
SA_SESSION_KIND = SearchAttributeKey.for_keyword("RfSessionKind")
SA_CATEGORY = SearchAttributeKey.for_keyword("RfCategory")
SA_FIX_STATUS = SearchAttributeKey.for_keyword("RfFixStatus")
CUSTOM_SEARCH_ATTRIBUTES = (SA_ACCOUNT_ID, SA_STATUS, SA_SESSION_KIND, SA_CATEGORY, SA_FIX_STATUS)
