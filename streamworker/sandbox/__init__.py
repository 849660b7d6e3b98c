"""The sandbox: container spec (pure), Docker connection, one-run lifecycle, helper."""
