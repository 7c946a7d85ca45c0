"""The model registry: registered versions' files (:mod:`.files`) and the running stages'
switch to a promoted version (:mod:`.switch`). The decisions are pure
(:mod:`pipeline.core.model_registry`); the Postgres access is
:mod:`pipeline.store.model_registry`."""
