"""Real-time stage: micro-batched classification of every ingested post."""
