"""streamworker: event-sourced code execution over Kafka, Docker and SQL."""

__version__ = "0.1.0"
