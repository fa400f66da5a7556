"""Benchmarks that print numbers; bench/RESULTS.md holds the measured tables and raw output."""
