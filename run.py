"""synthgen command line: composes the Hydra config and runs it (synthgen/cli.py).

python run.py corpus=movies model=llama31_8b
python run.py -m prompt=notebook,critic model=llama31_8b,qwen25_7b
python run.py --help
"""

import sys

from synthgen.rundir.lockfile import refuse_early

refuse_early(sys.argv[1:])  # a run dir in use: one line now, not after the imports below

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from synthgen import cli  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    cli.task(cfg)


if __name__ == "__main__":
    cli.main(main)
