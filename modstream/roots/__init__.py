"""Composition roots: one per process, wiring adapters from the one Settings."""
