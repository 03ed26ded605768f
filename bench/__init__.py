"""Benchmarks (`make bench`): ratios measured in one run, never asserted in unit tests."""
