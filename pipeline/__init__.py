"""Stream processing, stages, adapters and the ``modstream`` CLI."""
