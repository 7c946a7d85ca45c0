"""Developer tooling: fault injection and the soak benchmark.

Nothing in ``schemas``, ``classifiers``, ``pipeline`` or ``replay`` imports this package; a
runtime image can leave it out.
"""
