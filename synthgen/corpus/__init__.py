"""The corpus of a run: documents in, the chunks to ask about out.

reading     files -> Docs, one file at a time (a broken file is skipped and reported)
decoding    text files decoded exactly (UTF-8, else the encoding a language could have)
cleaning    page furniture off PDF text (running headers, page numbers, split words)
chunking    Docs -> Chunks (SentenceSplitter; chunking.bounds=fit cuts or joins them)
dedup       near-duplicates: train/val leaks, copies within a split, repeated questions
selection   chunks inside the length bounds that mention a keyword
load        all of the above per split (or a prepared folder read back), and the slots
prepared    task=prepare: read and chunk once per dataset (corpus.prepared)
"""
