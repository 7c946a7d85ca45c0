"""Pure core: plain functions and small state machines over typed events, no I/O."""
