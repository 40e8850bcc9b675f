"""synthgen: documents in, synthetic question/answer rows out, as a declarative batch job."""

__version__ = "0.1.0"
