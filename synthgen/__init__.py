"""synthgen: documents in, synthetic question/answer rows out, as a declarative batch job."""

__version__ = "0.1.0"

from synthgen import schema  # noqa: E402  (the config schema goes into Hydra's ConfigStore first)

schema.register()
