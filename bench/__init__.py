"""Benchmarks for airlock (``make bench``); not part of the installed package."""
