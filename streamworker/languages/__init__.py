"""The language registry: data (`registry.toml`, conformance cases) and pure functions."""
