"""Benchmarks: `python -m bench.<name>`, run by `make bench`, never by `make test`."""
