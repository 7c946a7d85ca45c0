"""The application layer: the ``modstream`` CLI and each process's composition root.

Nothing below it (schemas, classifiers, pipeline, replay, devtools) imports it.
"""
