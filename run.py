"""synthgen command line: composes the Hydra config and runs it (synthgen/cli.py).

python run.py corpus=movies model=llama31_8b
python run.py -m prompt=notebook,critic model=llama31_8b,qwen25_7b
python run.py --help
"""

import sys

if __name__ == "__main__":  # not in a process that imports run.py as __mp_main__ (see below)
    from synthgen.rundir.lockfile import refuse_early

    refuse_early(sys.argv[1:])  # a run dir in use: one line now, not after the imports below

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from synthgen import cli  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> object:
    # the task's outcome goes back to Hydra: a sweep's callback reads it (synthgen/scale/sweep.py)
    return cli.task(cfg)


# vLLM starts its engine core with multiprocessing's spawn, which imports this file again as
# __mp_main__ with the parent's sys.argv: the parent holds the run dir's lock, so the check
# above must not run there (it did, and the engine failed to start: "run dir is in use").
if __name__ == "__main__":
    cli.main(main)
