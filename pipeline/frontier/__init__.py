"""The near-real-time frontier stage: Anthropic client, decide path, stage and simulator."""
