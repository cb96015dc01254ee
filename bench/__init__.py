"""Benchmarks: `make bench` runs them all; `python -m bench.<name>` runs one. Never part of
`make test`. Each reports ratios against a baseline measured in the same run, because absolute
times on shared machines drift."""
