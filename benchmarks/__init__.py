"""Benchmarks (``make bench``): latency and memory, printed as a table. Never part of the tests."""
