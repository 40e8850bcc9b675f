"""Quality gates: which generated questions and answers are kept, and why the others go.

text        words as the gates (and the comparison report) see them
rules       the gates, one small class each (check -> None or a Drop)
filters     the `filters` config group: the set of gates a config names, applied to a row
signals     per-row quality signals (logprob, bm25_rank, embed_rank, easiness)
judge_spec  the `judge` group: what the judge asks and how its reply reads
judge       the judge stage: a model says yes or no to each finished row
refilter    task=filter: a finished run dir through the gates again
"""
