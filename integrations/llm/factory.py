"""Choose the LLM provider from settings: Anthropic when a key is configured, else the offline one."""

from __future__ import annotations

import logging

import anthropic
import httpx2

from core.config import Settings
from integrations.llm.anthropic_provider import AnthropicProvider, ModelRouting
from integrations.llm.base import LlmProvider
from integrations.llm.offline_provider import OfflineProvider

log = logging.getLogger(__name__)


def provider_name(settings: Settings) -> str:
    """'anthropic' or 'offline': LLM_PROVIDER when forced, else by whether ANTHROPIC_API_KEY is set."""
    if settings.llm_provider != "auto":
        return settings.llm_provider
    return "anthropic" if settings.anthropic_api_key else "offline"


def build_llm_provider(settings: Settings, *, http_client: httpx2.AsyncClient | None = None) -> LlmProvider:
    """The configured provider; `http_client` lets tests point the real SDK at a local stand-in."""
    name = provider_name(settings)
    if name == "offline":
        log.info("LLM provider: offline (rule-based; set ANTHROPIC_API_KEY to use Claude)")
        return OfflineProvider()
    if not settings.anthropic_api_key:
        raise ValueError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY (or use LLM_PROVIDER=offline)")
    client = anthropic.AsyncAnthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        timeout=settings.anthropic_timeout_s,
        # Temporal owns retries (with backoff and retry-after); SDK retries would hide them from history.
        max_retries=settings.anthropic_max_retries,
        http_client=http_client,
    )
    log.info("LLM provider: anthropic (base url %s)", client.base_url)
    return AnthropicProvider(client, ModelRouting.from_settings(settings))
