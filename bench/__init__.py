"""Benchmarks of Atlas Compliance against DESIGN §7 (run with ``make bench`` or ``python -m bench.run``)."""
