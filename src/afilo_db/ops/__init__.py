"""Operator work: migrate, seed, summarize. Called by the CLI; never prints."""
