"""Language registry (data) and the offline runtime-image builder."""
