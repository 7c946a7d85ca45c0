"""Shadow mode: a candidate model and policy scored next to the live ones, with no effect."""
