"""The local stack: a real Kafka broker (KRaft) and a real Postgres server, without Docker."""

from pipeline.stack.kafka import KafkaBroker
from pipeline.stack.manager import StackStatus, down, status, up
from pipeline.stack.postgres import PostgresServer

__all__ = ["KafkaBroker", "PostgresServer", "StackStatus", "down", "status", "up"]
