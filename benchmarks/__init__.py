"""Poshuk's benchmarks, run as ``python -m benchmarks <name>``; see ``benchmarks/README.md``."""
