"""The local stack: a real Kafka broker or cluster (KRaft) and a real Postgres, without Docker."""

from pipeline.stack.cluster import KafkaCluster
from pipeline.stack.kafka import KafkaBroker
from pipeline.stack.manager import StackStatus, down, status, up
from pipeline.stack.postgres import PostgresServer

__all__ = ["KafkaBroker", "KafkaCluster", "PostgresServer", "StackStatus", "down", "status", "up"]
