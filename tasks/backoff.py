"""Capped exponential backoff, shared by every task that waits for a service to come back."""

from __future__ import annotations


def retry_delay(retries: int, base: int, cap: int) -> int:
    """Exponential backoff: base, 2 x base, 4 x base ... at most cap seconds."""
    # Clamp the exponent: past the cap the exact power no longer matters, and it stays small.
    return min(cap, base * 2 ** min(retries, 32))


def total_wait(max_retries: int, base: int, cap: int) -> int:
    """Seconds of outage that ``max_retries`` retries with this backoff wait out."""
    return sum(retry_delay(n, base, cap) for n in range(max_retries))
