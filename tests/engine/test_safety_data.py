"""The child-safety classifier's examples never contain a text of an evaluation set (the bench's held-out split and
the fresh sets), and every example names a known kind, category and language. Independent writers can produce the
same short line ("why is the sky blue"); such a line is removed from the examples, not from the evaluation set."""

from __future__ import annotations

import json
import re

from avatar_engine import moderation

DATA = moderation.DATA_FILE.parent
EVALUATION_SETS = [(moderation.DATA_FILE, "heldout")] + [(path, None) for path in sorted(DATA.glob("child_safety_fresh*.json"))]
UNSAFE = {"self-harm", "violence", "sexual", "personal-data", "grooming-secrecy", "drugs", "dangerous-chemistry",
          "hate", "jailbreak", "meeting"}
ORDINARY = {"homework", "feelings", "stories", "animals", "everyday", "games", "science", "tricky", "chit-chat",
            "ordinary"}


def normalised(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def evaluation_turns() -> dict[str, str]:
    turns = {}
    for path, split in EVALUATION_SETS:
        for item in json.loads(path.read_text(encoding="utf-8"))["items"]:
            if split is None or item["split"] == split:
                turns.update((normalised(turn), item["id"]) for turn in item["turns"])
    return turns


def test_there_are_four_evaluation_sets_besides_the_split():
    names = [path.name for path, split in EVALUATION_SETS if split is None]
    assert names == ["child_safety_fresh.json", "child_safety_fresh2.json", "child_safety_fresh3.json",
                     "child_safety_fresh4.json"]


def test_examples_never_contain_an_evaluation_text():
    held_out = evaluation_turns()
    assert len(held_out) > 700
    leaks = [(path.name, example["text"], held_out[normalised(example["text"])])
             for path in moderation.EXAMPLE_FILES
             for example in json.loads(path.read_text(encoding="utf-8"))["examples"]
             if normalised(example["text"]) in held_out]
    assert leaks == []


def test_examples_name_known_kinds_categories_and_languages():
    rows = moderation.training_examples()
    assert len(rows) > 1700
    for kind, category, _ in rows:
        assert (kind, category in (UNSAFE if kind == "unsafe" else ORDINARY)) == (kind, True)
    for path in moderation.EXAMPLE_FILES:
        for example in json.loads(path.read_text(encoding="utf-8"))["examples"]:
            assert example["language"] in ("en", "ru") and example["text"].strip()
