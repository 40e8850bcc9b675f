"""What a run dir already holds, and whether this config may continue it (resume). What the
sweep's other job dirs hold is scale.sharding.sibling_state's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from synthgen.errors import ConfigError, SynthgenError
from synthgen.records import key_of
from synthgen.rundir import QUESTIONS, REJECTED, SPLITS, has_config, load_config, rows_file
from synthgen.rundir.identity import row_config, row_config_diff
from synthgen.rundir.writing import read_jsonl


@dataclass
class RunState:
    """The run dir's records: rows per split, rejected generations, accepted questions.

    Loaded once per session; the row maker appends what it writes, so at the end the state is
    the dir's JSONL files without reading them again.
    """

    rows: dict[str, list[dict]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    rejected: list[dict] = field(default_factory=list)
    questions: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: Path, repair: bool) -> RunState:
        """repair=True cuts a half-written last line off each file, so appending goes on."""
        try:
            rows = {s: read_jsonl(run_dir / rows_file(s), repair) for s in SPLITS}
            rejected = read_jsonl(run_dir / REJECTED, repair)
            questions = read_jsonl(run_dir / QUESTIONS, repair)
        except ValueError as e:  # damage beyond a cut last line: a person must look
            raise SynthgenError(
                f"resume: {e}; move the file aside or use a new hydra.run.dir"
            ) from None
        return cls(rows, rejected, questions)

    @staticmethod
    def repair(run_dir: Path) -> None:
        """Cut a half-written last line off each JSONL file before appending to it."""
        for name in (*(rows_file(s) for s in SPLITS), REJECTED, QUESTIONS):
            read_jsonl(run_dir / name, repair=True)

    @property
    def n_rows(self) -> int:
        return sum(len(r) for r in self.rows.values())

    def done_keys(self) -> set[str]:
        keys = {key_of(r) for rows in self.rows.values() for r in rows}
        return keys | {r["key"] for r in self.rejected}

    @classmethod
    def union(cls, states: list[RunState]) -> RunState:
        return cls(
            {s: [r for st in states for r in st.rows.get(s, [])] for s in SPLITS},
            [r for st in states for r in st.rejected],
            [q for st in states for q in st.questions],
        )


def check_resume(cfg: DictConfig, run_dir: Path, state: RunState) -> None:
    """Refuse a dir this config may not continue: resume=false with rows, or rows made with
    another row config."""
    if state.n_rows and not cfg.resume:
        raise ConfigError(
            f"resume: {run_dir} already holds {state.n_rows} rows; set resume=true to "
            "continue them or choose a new hydra.run.dir"
        )
    if has_config(run_dir) and (state.n_rows or state.rejected or state.questions):
        diff = row_config_diff(row_config(load_config(run_dir)), row_config(cfg))
        if diff:
            raise ConfigError(
                f"resume: {run_dir} was made with another config ({diff}); "
                "use a new hydra.run.dir or the old value"
            )
