"""Generating rows: prompts to the model, its replies to rows.

prompting   prompts from templates, and parsing what the model wrote back
llm         the generate task's model (model._target_) and each stage's settings
feed        the generation loop: prompts to the backend, results handed on, OOM backoff
rows        RowMaker: each slot's jobs, each reply parsed and gated, every record appended
dryrun      dry_run=true: counts, what resume would skip, the first prompts
pipeline    task=generate: corpus -> rows -> finish
"""
