"""synthgen.dataset."""
