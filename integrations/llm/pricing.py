"""Per-model list prices (USD per million tokens) and the cost estimate the usage ledger records.

Prices are Anthropic's published list prices for standard (non-batch, <=200k context) requests with
5-minute cache writes; they are an estimate for budgeting, not an invoice. Update this table when the
price list changes; an unknown model is priced by its family name (haiku/sonnet/opus), else as sonnet.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from integrations.llm.base import LlmUsageReport

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")  # the ledger column is NUMERIC(12, 6)


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal


def _price(input_: str, output: str) -> ModelPrice:
    # Anthropic bills cache reads at 0.1x and 5-minute cache writes at 1.25x the input price.
    base = Decimal(input_)
    return ModelPrice(input=base, output=Decimal(output), cache_read=base * Decimal("0.1"),
                      cache_write=base * Decimal("1.25"))


HAIKU_4_5 = _price("1", "5")
SONNET_4 = _price("3", "15")
OPUS_4_5 = _price("5", "25")
OPUS_4_1 = _price("15", "75")
FREE = ModelPrice(Decimal(0), Decimal(0), Decimal(0), Decimal(0))

PRICES: dict[str, ModelPrice] = {
    "claude-haiku-4-5": HAIKU_4_5,
    "claude-haiku-4-5-20251001": HAIKU_4_5,
    "claude-3-5-haiku-latest": _price("0.8", "4"),
    "claude-sonnet-4-6": SONNET_4,
    "claude-sonnet-4-5": SONNET_4,
    "claude-sonnet-4-5-20250929": SONNET_4,
    "claude-sonnet-4-0": SONNET_4,
    "claude-opus-4-6": OPUS_4_5,
    "claude-opus-4-5": OPUS_4_5,
    "claude-opus-4-5-20251101": OPUS_4_5,
    "claude-opus-4-1": OPUS_4_1,
}
FAMILY_FALLBACK: tuple[tuple[str, ModelPrice], ...] = (("haiku", HAIKU_4_5), ("sonnet", SONNET_4), ("opus", OPUS_4_5))


def price_for(provider: str, model: str) -> ModelPrice:
    """The list price of `model`; the offline provider is free."""
    if provider != "anthropic":
        return FREE
    if model in PRICES:
        return PRICES[model]
    for family, price in FAMILY_FALLBACK:
        if family in model:
            return price
    return SONNET_4


def estimate_cost(usage: LlmUsageReport) -> Decimal:
    """Estimated USD for the tokens in `usage` (input_tokens excludes cache reads and writes)."""
    price = price_for(usage.provider, usage.model)
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
    ) / MILLION
    return total.quantize(COST_QUANTUM)
