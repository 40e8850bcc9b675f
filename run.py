"""synthgen command line: composes the Hydra config and runs it.

python run.py corpus=movies model=llama31_8b
python run.py -m prompt=notebook,critic model=llama31_8b,qwen25_7b
"""

import sys

from synthgen.lockfile import refuse_early

refuse_early(sys.argv[1:])  # a run dir in use: one line now, not after the imports below

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from synthgen import pipeline, sweep  # noqa: E402  # sweep: the run dir names of -m and its callback
from synthgen.config import SynthgenError  # noqa: E402
from synthgen.runlock import RunDirLocked  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        pipeline.run(cfg)
    except Exception as e:
        if isinstance(e, RunDirLocked) and sweep.in_multirun():
            # another process writes that dir: leave its files alone, fail the sweep at its end
            print(f"error: {e}", file=sys.stderr)
            sweep.locked_out.append(str(e))
            return
        if sweep.in_multirun():  # recorded in the run dir; the sweep goes on to the next run
            sweep.record_failure(cfg, e)
            return
        if isinstance(e, SynthgenError):  # the user's to fix: one line, no traceback
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
