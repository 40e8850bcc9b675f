"""synthgen.embed."""
