"""Capped exponential backoff, shared by every task that waits for a service to come back."""

from __future__ import annotations


def retry_delay(retries: int, base: int, cap: int) -> int:
    """Exponential backoff: base, 2 x base, 4 x base ... at most cap seconds."""
    return min(cap, base * 2**retries)
