"""synthgen command line: composes the Hydra config and runs it (synthgen/cli.py).

python run.py corpus=movies model=llama31_8b
python run.py -m prompt=notebook,critic model=llama31_8b,qwen25_7b
python run.py --help
"""

import hydra
from omegaconf import DictConfig

from synthgen import cli


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    cli.task(cfg)


if __name__ == "__main__":
    cli.main(main)
