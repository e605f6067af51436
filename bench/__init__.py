"""Benchmarks and load drivers (never part of the timed test run; a smoke run keeps them working)."""
