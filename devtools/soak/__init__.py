"""``modstream bench soak``: sustained traffic through the stages while faults are injected."""
