"""synthgen.scale."""
