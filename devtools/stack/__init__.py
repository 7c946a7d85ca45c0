"""The local stack: a real Kafka broker or cluster (KRaft) and a real Postgres, without Docker."""

from devtools.stack.cluster import KafkaCluster
from devtools.stack.kafka import KafkaBroker
from devtools.stack.manager import StackStatus, down, status, up
from devtools.stack.postgres import PostgresServer

__all__ = ["KafkaBroker", "KafkaCluster", "PostgresServer", "StackStatus", "down", "status", "up"]
