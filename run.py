"""synthgen command line: composes the Hydra config and runs it.

python run.py corpus=movies model=llama31_8b
python run.py -m prompt=notebook,critic model=llama31_8b,qwen25_7b
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from synthgen import pipeline
from synthgen.config import SynthgenError


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        pipeline.run(cfg)
    except SynthgenError as e:  # the user's to fix: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # one job of a -m sweep: its launcher records it as failed (workers must live)
        sys.exit(2)


if __name__ == "__main__":
    main()
