"""A small hand-written run dir in the contract's format (what task=generate leaves behind).

Chunks and questions are written by hand, so the fine-tuning tasks are tested without running
a generator. The train split holds the cases the negative miner must handle: two questions on
one chunk, a chunk whose text appears again under another file (same text, another chunk id),
and a near-duplicate of a chunk (an overlapping neighbour).
"""

from __future__ import annotations

import json
from pathlib import Path

from synthgen.records import Row, short_hash
from synthgen.rundir.writing import write_outputs

HANDHELD = (
    "The director shot the whole film with a handheld camera, so every scene trembles a "
    "little. Critics first called it careless, but the shaking frame keeps the audience "
    "inside the panic of the characters, and the chase on the staircase feels breathless."
)
TRAIN = {
    "camera.md": HANDHELD,
    "camera_copy.md": HANDHELD,  # the same text in another file: another chunk id, same text
    "camera_overlap.md": HANDHELD[:150]
    + " Later films borrowed the trembling frame for found-footage horror.",
    "score.md": "The composer wrote the score before a single frame was shot. The orchestra "
    "recorded it live while the actors rehearsed, and the director cut the picture to the "
    "music, so the rhythm of the editing follows the strings rather than the dialogue.",
    "casting.md": "Casting an unknown actress in the lead changed the tone of the picture. "
    "Without a star, the audience could not predict her fate, and the studio's fear of a "
    "flop turned into the surprise hit of the festival season.",
    "horror.md": "Horror films turn private anxiety into a shared experience in the theater. "
    "When the whole room jumps at once, strangers laugh together, and that relief is why "
    "midnight screenings of cheap monster movies still sell out.",
    "editing.md": "The editor removed forty minutes from the first cut. Whole subplots "
    "vanished, and the shorter film moved with the speed of a thriller, although fans "
    "still argue about the lost ending that only appears in the novel.",
    "animation.md": "Stop-motion animation needs thousands of small moves of clay puppets. "
    "A single second of screen time took the animators a full day, and the fingerprints "
    "left in the clay became part of the film's handmade charm.",
}
TRAIN_QA = [
    ("camera.md", "Why does every scene of the film tremble?", "It was shot handheld."),
    ("camera.md", "How did critics first judge the shaking camera?", "They called it careless."),
    ("score.md", "When was the score written?", "Before any frame was shot."),
    ("score.md", "What does the rhythm of the editing follow?", "The strings of the score."),
    ("casting.md", "Who played the lead role?", "An unknown actress."),
    ("casting.md", "What did the studio fear?", "A flop."),
    ("horror.md", "Why do midnight screenings of monster movies sell out?", "Shared relief."),
    ("editing.md", "How much did the editor remove from the first cut?", "Forty minutes."),
    ("animation.md", "How long did one second of stop-motion take?", "A full day."),
    ("animation.md", "What became part of the film's handmade charm?", "The fingerprints."),
]
VAL = {
    "western.md": "The western was filmed in a desert where the temperature passed forty "
    "degrees. The horses rested in the shade between takes, and the cast drank gallons of "
    "water while the sun bleached the colors of the costumes.",
    "noir.md": "Film noir used hard shadows from venetian blinds to trap its detectives in "
    "stripes of light. Low budgets forced the cinematographers to light only part of the "
    "set, and the darkness became the style.",
    "musical.md": "The musical rehearsed its dance numbers for six weeks before shooting. "
    "Each routine was filmed in one long take, so a single wrong step meant starting the "
    "whole song again from the first bar.",
    "documentary.md": "The documentary crew followed the fishermen for a whole winter. "
    "They filmed storms from the deck, and the final scene shows the harbor frozen solid "
    "while the boats wait for spring.",
    "silent.md": "Silent film actors exaggerated their gestures because there was no "
    "dialogue. Title cards carried the story, and live pianists in each theater improvised "
    "the music to match the action on screen.",
}
VAL_QA = [
    ("western.md", "How hot was it where the western was filmed?", "Over forty degrees."),
    ("noir.md", "What did the venetian blinds create in film noir?", "Stripes of light."),
    ("musical.md", "How long were the dance numbers rehearsed?", "Six weeks."),
    ("musical.md", "What happened after a wrong step in a long take?", "The song restarted."),
    ("documentary.md", "What does the final scene of the documentary show?", "A frozen harbor."),
    ("silent.md", "Who played music in theaters during silent films?", "Live pianists."),
]


def make_qa_run(out: Path) -> Path:
    """Write the run dir: <split>.jsonl rows and every end-of-run file (rundir.writing)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, corpus = {}, {}
    for split, chunks, qa in (("train", TRAIN, TRAIN_QA), ("val", VAL, VAL_QA)):
        ids = {src: short_hash(src, text) for src, text in chunks.items()}
        corpus[split] = {ids[src]: text for src, text in chunks.items()}
        split_rows, q_index = [], {}
        for src, q, a in qa:
            i = q_index[src] = q_index.get(src, -1) + 1
            row = Row(
                id=short_hash(split, q),
                split=split,
                chunk_id=ids[src],
                source=src,
                doc=chunks[src],
                question=q,
                answer=a,
                prompt="handwritten",
                model="hand",
                q_index=i,
                tokens={"question": len(q.split()), "answer": len(a.split())},
            )
            split_rows.append(row.to_dict())
        rows[split] = split_rows
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for r in reversed(split_rows):  # JSONL is in finishing order, not dataset order
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    write_outputs(out, rows, corpus)
    (out / "summary.json").write_text(json.dumps({"status": "complete"}), encoding="utf-8")
    return out
