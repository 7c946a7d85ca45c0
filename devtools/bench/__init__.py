"""Benchmarks behind ``modstream bench <stage>``: each ends with one JSON line of figures."""
