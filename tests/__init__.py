"""modstream tests."""
