"""The Python runtime: a model class imported in an isolated namespace, called on daemon threads."""
