"""Kafka adapters: admin (topics), producer and consumer wrappers."""
