"""Benchmarks behind `caruso bench <name>`: each module returns JSON-able figures."""
