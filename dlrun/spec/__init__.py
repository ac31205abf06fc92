"""The spec: its schema, overrides and validation, Keras name tables, search spaces."""
