"""The config schema (synthgen/schema/): each default written once, the docs' key table and
--help written from it, YAML options holding only what differs, old run dirs upgraded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from synthgen import schema
from synthgen.config import check
from synthgen.errors import ConfigError
from synthgen.rundir import upgrade_config
from synthgen.rundir.upgrade import UPGRADES
from synthgen.schema.__main__ import DOC, with_table
from tests.conftest import REPO, cli, compose

PACKAGE = REPO / "synthgen"
CONF = REPO / "conf"


def literals(value: object) -> list[str]:
    """How a default is spelled in Python source."""
    if isinstance(value, str):
        return [f'"{value}"', f"'{value}'"]
    if isinstance(value, bool | None | int | float):
        return [repr(value)] + ([f"{value:.1f}"] if isinstance(value, int | float) else [])
    return [repr(value)]


def python_sources() -> dict[Path, str]:
    """synthgen's modules but the schema; rundir/upgrade.py without its UPGRADES table (the
    values in force before a key existed: history, which must not follow a changed default)."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        if p.is_relative_to(PACKAGE / "schema"):
            continue
        text = p.read_text(encoding="utf-8")
        if p == PACKAGE / "rundir" / "upgrade.py":
            text = re.sub(r"UPGRADES: .*?\n}\n", "", text, flags=re.DOTALL)
        out[p] = text
    return out


# the same name (and value) in synthgen/ that is not a config key's default: (path, name): why
NOT_THE_KEY = {
    ("synthgen/backends/batched.py", "do_sample"): "transformers' generate kwargs",
    ("synthgen/backends/openai.py", "data"): "an endpoint reply's JSON",
    ("synthgen/scale/merge.py", "leak"): "summary.json's leak counts",
    ("synthgen/scale/merge.py", "splits"): "summary.json's splits",
    ("synthgen/compare/runs.py", "splits"): "summary.json's splits",
    ("synthgen/gates/refilter.py", "splits"): "summary.json's splits",
    ("synthgen/generate/dryrun.py", "furniture"): "a file's cleaning counts",
    ("synthgen/scale/merge.py", "count"): "a merged run is one shard: not a default",
    ("synthgen/scale/merge.py", "index"): "a merged run is one shard: not a default",
    ("synthgen/gates/judge_spec.py", "name"): "judge.name",
    ("synthgen/generate/prompting.py", "require_question_mark"): "the parsers' parameter; "
    "RowMaker passes the config's value",
    # encoders' own parameters; every caller passes the config's value
    ("synthgen/embed/retrieval.py", "query_prefix"): "encode's parameter",
    ("synthgen/embed/retrieval.py", "batch_size"): "encode's parameter",
    ("synthgen/embed/negatives.py", "query_prefix"): "mine's parameter",
    ("synthgen/embed/negatives.py", "batch_size"): "mine's parameter",
    ("synthgen/embed/negatives.py", "seed"): "mine's and sample's parameter",
    ("synthgen/gates/signals.py", "query_prefix"): "an encoder's parameter",
    ("synthgen/generate/prompting.py", "system_role"): "messages' parameter",
}


def keys_with_defaults() -> list[tuple[str, object]]:
    return [(k, d) for k, d, _ in schema.every_key() if d != "???"]


def test_no_config_default_is_written_outside_the_schema() -> None:
    """Walk the schema; for each key, no `.get(key, default)` / `select(..., default=)` back-fill
    anywhere in synthgen/, no field or dict entry of that name holding the default, and no YAML
    file of conf/ that sets it to the default."""
    sources = python_sources()
    found = []
    for dotted, default in keys_with_defaults():
        name = dotted.rsplit(".", 1)[-1]
        lit = "(?:" + "|".join(map(re.escape, literals(default))) + r")(?![\w.])"
        patterns = [
            rf"\.get\(\s*[\"']({name}|{re.escape(dotted)})[\"']\s*,",  # x.get("name", default)
            rf"select\([^)]*[\"']{re.escape(dotted)}[\"']\s*,\s*default=",
        ]
        if default is not None:  # `x: T | None = None` is no value written twice
            patterns += [
                rf"\b{name}\s*:\s*[^=\n]+=\s*{lit}",  # a field or parameter `name: T = default`
                rf"[\"']{name}[\"']\s*:\s*{lit}",  # a dict entry "name": default
            ]
        for path, text in sources.items():
            if (path.relative_to(REPO).as_posix(), name) in NOT_THE_KEY:
                continue
            for pat in patterns:
                for m in re.finditer(pat, text):
                    line = text.count("\n", 0, m.start()) + 1
                    found.append(f"{dotted}: {path.relative_to(REPO)}:{line}: {m.group(0)!r}")
    for path, data in yaml_options():
        for dotted, default in keys_with_defaults():
            group, _, rest = dotted.partition(".")
            if path.parent.name == group:
                at = rest  # conf/<group>/<option>.yaml
            elif path == CONF / "config.yaml" and group not in schema.GROUPS:
                at = dotted
            else:
                continue
            parent, _, leaf = at.rpartition(".")
            holder = OmegaConf.select(OmegaConf.create(data), parent) if parent else data
            if holder is not None and leaf in holder and holder[leaf] == default:
                found.append(f"{dotted}: {path.relative_to(REPO)} repeats the default")
    help_page = (CONF / "hydra" / "help" / "synthgen.yaml").read_text(encoding="utf-8")
    for dotted, default in keys_with_defaults():
        if re.search(rf"\b{re.escape(dotted)}={re.escape(schema.shown(default))}\b", help_page):
            found.append(f"{dotted}: conf/hydra/help/synthgen.yaml writes its default")
    assert found == [], "\n".join(found)


def yaml_options() -> list[tuple[Path, dict]]:
    files = [CONF / "config.yaml"] + [p for g in schema.GROUPS for p in (CONF / g).glob("*.yaml")]
    return [(p, yaml.safe_load(p.read_text(encoding="utf-8")) or {}) for p in files]


def test_every_group_option_names_its_schema_first() -> None:
    for group in schema.GROUPS:
        for p in sorted((CONF / group).glob("*.yaml")):
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
            assert data["defaults"][0] == f"/{schema.schema_name(group)}@_here_", p
    top = yaml.safe_load((CONF / "config.yaml").read_text(encoding="utf-8"))
    assert top["defaults"][0] == schema.TOP


def test_the_default_config_holds_every_schema_default() -> None:
    """What no option of the default config sets is the schema's default, key for key."""
    cfg = compose()
    set_by_options = {"corpus.dir", "corpus.train_files", "corpus.val_files"}
    set_by_options |= {"keywords.words", "keywords.match"}  # keywords=film: the notebook's
    # prompt=fewshot, model=gemma3_270m's prompt: its templates, worked examples and stops
    set_by_options |= {
        f"prompt.{k}"
        for k in ("name", "question", "answer", "followup", "example", "examples", "stop_strings")
    }
    for dotted, default in schema.defaults().items():
        if dotted not in set_by_options:
            got = OmegaConf.select(cfg, dotted)
            got = OmegaConf.to_container(got) if OmegaConf.is_list(got) else got
            assert got == default, dotted


def test_the_key_table_of_the_docs_is_the_schemas() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert with_table(text) == text, "run: python -m synthgen.schema"
    for dotted, _, _ in schema.every_key():
        assert f"| `{dotted}` |" in text


def test_help_shows_the_schemas_keys_with_their_defaults() -> None:
    page = cli("--help").stdout
    assert schema.help_keys() in page
    assert "  num_rows=500 " in page and "  generation.batch_size=auto " in page
    assert "schema" not in page.split("== Config groups", 1)[1].split("==", 1)[0]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("generation.do_sample=maybe", "generation.do_sample"),
        ("merge.partial=3", "merge.partial"),
        ("cleaning.edge_lines=x", "cleaning.edge_lines"),
        ("num_rows=true", "num_rows"),
        ("dedup.leak_threshold=half", "dedup.leak_threshold"),
        ("corpus.dir=null", "corpus.dir"),
    ],
)
def test_a_wrong_type_is_one_line_naming_its_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(compose([override]))
    assert str(e.value).startswith(key + ":") and "\n" not in str(e.value), str(e.value)


def test_an_unknown_key_of_a_schema_group_is_refused_when_composed() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="chunking.chunk_sise"):
        compose(["chunking.chunk_sise=3"])


def test_an_old_config_is_upgraded_once() -> None:
    """A config saved before keys existed: each of UPGRADES at its old value, every other
    schema key at its default, a group it lacks entirely left out (its stage did not exist)."""
    old = OmegaConf.create(
        {
            "num_rows": 3,
            "generation": {"max_new_tokens": 12},
            "chunking": {"chunk_size": 256, "chunk_overlap": 0, "min_chars": 1, "max_chars": 9},
            "corpus": {"dir": "d", "train_files": ["a"], "val_files": ["b"]},
            "keywords": {"words": [], "match": "word"},
        }
    )
    new = upgrade_config(old)
    assert new.num_rows == 3 and new.generation.max_new_tokens == 12
    assert new.chunking.bounds == UPGRADES["chunking.bounds"]
    assert new.filters.round_trip.enabled is False
    assert new.engine.gpu_memory_utilization == schema.engine.Auto.gpu_memory_utilization
    assert new.corpus.leak == schema.Corpus.leak and new.shard.count == schema.Shard.count
    assert "cleaning" not in new and "dedup" not in new
    assert "bounds" not in old.chunking  # the saved config itself is left as it was


def test_an_option_of_the_users_own_gets_every_key_without_naming_the_schema(
    tmp_path: Path,
) -> None:
    """docs/configuration.md: conf/corpus/mydocs.yaml with dir, train_files and val_files."""
    import shutil

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "corpus" / "mydocs.yaml").write_text(
        "dir: data/movies  # folder\ntrain_files: [a.txt]  # names\nval_files: [b.txt]  # names\n"
    )
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["corpus=mydocs"])
    assert cfg.corpus.leak == schema.Corpus.leak and cfg.corpus.encoding == schema.Corpus.encoding
    assert list(cfg.corpus.train_files) == ["a.txt"]


def test_an_old_config_has_its_engine_keys_moved_into_the_engine_group() -> None:
    """generation.engine and its keys (rundir.upgrade.MOVED) land in `engine`, keeping only the
    keys of the engine the run asked for; a config without an engine gets the default one."""
    from synthgen.rundir.upgrade import MOVED

    old = OmegaConf.create(
        {
            "generation": {
                "max_new_tokens": 12,
                "engine": "static",
                "prefill_chunk_size": 512,
                "gpu_memory_utilization": 0.5,
                "vllm_feed": "waves",
            }
        }
    )
    new = upgrade_config(old)
    assert dict(new.engine) == {"name": "static", "prefill_chunk_size": 512}
    assert all(k.split(".")[1] not in new.generation for k in MOVED)
    assert new.generation.max_new_tokens == 12
    vllm = upgrade_config(
        OmegaConf.create({"generation": {"engine": "vllm", "vllm_feed": "waves"}})
    )
    assert vllm.engine.feed == "waves" and vllm.engine.name == "vllm"
    assert vllm.engine.gpu_memory_utilization == schema.engine.Vllm.gpu_memory_utilization
    assert "prefill_chunk_size" not in vllm.engine
    none = upgrade_config(OmegaConf.create({"generation": {"max_new_tokens": 12}}))
    assert dict(none.engine) == schema.as_dict(schema.engine.ENGINES[schema.engine.DEFAULT])
    assert upgrade_config(new) == new  # upgraded once: a second pass changes nothing


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("generation.engine=vllm", "generation.engine: moved; write engine=vllm"),
        ("++generation.vllm_feed=waves", "generation.vllm_feed: moved; write engine.feed=waves"),
        ("generation.prefill_chunk_size=64", "write engine.prefill_chunk_size=64"),
        ("generation.concurrency=4", "write model.concurrency=4 (model.backend=openai only)"),
        ("engine=vllm", None),
        ("generation.max_new_tokens=8", None),
    ],
)
def test_an_old_spelling_on_the_command_line_names_the_new_one(
    override: str, says: str | None
) -> None:
    from synthgen.rundir.upgrade import moved_override

    got = moved_override(override)
    assert got == says if says is None or says.startswith("generation.") else says in got


def test_an_old_model_config_keeps_its_row_identity() -> None:
    """A model node saved before the group had a schema lacks the keys its YAML did not set;
    upgraded, it fills them at its backend spec's defaults, so resuming it compares equal."""
    from synthgen.rundir.identity import row_config

    for option in ("llama31_8b", "gpt4o_mini", "gemma3_270m"):
        cfg = compose([f"model={option}"])
        old = OmegaConf.create(OmegaConf.to_container(cfg))
        for k in ("prompt_format", "stop_strings", "max_new_tokens", "cues", "hub_id"):
            if k in old.model and not old.model[k]:  # unset or empty: an old YAML left it out
                old.model.pop(k)
        assert row_config(upgrade_config(old)) == row_config(cfg), option


def test_an_old_endpoint_config_has_its_request_settings_moved_into_the_model() -> None:
    """generation.concurrency and the retry keys went to the endpoint's spec (model.*); a
    local model's spec has none of them, so there they are dropped."""
    old = {"generation": {"concurrency": 16, "retry_backoff": 0.5, "max_new_tokens": 9}}
    served = upgrade_config(
        OmegaConf.create({**old, "model": {"backend": "openai", "name_or_path": "m"}})
    )
    assert served.model.concurrency == 16 and served.model.retry_backoff == 0.5
    assert served.model.max_retries == schema.model.EndpointSpec.max_retries
    assert "concurrency" not in served.generation and served.generation.max_new_tokens == 9
    local = upgrade_config(
        OmegaConf.create({**old, "model": {"backend": "transformers", "name_or_path": "m"}})
    )
    assert "concurrency" not in local.model and "concurrency" not in local.generation


@pytest.mark.parametrize("option", ["gpt4o_mini", "llama31_8b"])
def test_a_config_saved_by_main_48a6de4_upgrades_to_todays(option: str) -> None:
    """tests/helpers/old_configs/: a run dir's config as main 48a6de4 saved it (before the
    engine group and the model schema), composed there with model=<option>
    generation.engine=static generation.prefill_chunk_size=64 (and generation.concurrency=3 for
    the endpoint). Upgraded, it is today's config of the same command, key for key."""
    saved = OmegaConf.load(REPO / "tests" / "helpers" / "old_configs" / f"{option}_48a6de4.yaml")
    today = [f"model={option}", "engine=static", "engine.prefill_chunk_size=64"]
    today += ["model.concurrency=3"] if option == "gpt4o_mini" else []
    new = compose(today)
    assert OmegaConf.to_container(upgrade_config(saved)) == OmegaConf.to_container(new)


def test_every_engine_and_model_option_names_its_schema_first() -> None:
    """conf/engine/<name>.yaml names engine_<name>_schema; conf/model/*.yaml the schema of its
    backend's spec (gpt4o_mini: openai_compatible, which names it)."""
    for name in schema.engine.ENGINES:
        data = yaml.safe_load((CONF / "engine" / f"{name}.yaml").read_text(encoding="utf-8"))
        assert data["defaults"][0] == f"/{schema.schema_name(f'engine_{name}')}@_here_", name
    for p in sorted((CONF / "model").glob("*.yaml")):
        first = yaml.safe_load(p.read_text(encoding="utf-8"))["defaults"][0]
        kind = "endpoint" if compose([f"model={p.stem}"]).model.backend == "openai" else "local"
        want = f"/{schema.schema_name(f'model_{kind}')}@_here_"
        assert first in (want, "openai_compatible"), p
