"""Demo assets and the ``modstream demo`` runner."""
