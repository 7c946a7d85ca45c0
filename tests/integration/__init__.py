"""Integration tests: real Kafka and Postgres from the local stack (``modstream up``)."""
