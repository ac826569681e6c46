#!/usr/bin/env python3
"""Grouped k-fold cross-validation of the child-safety classifier on its *training* examples only.

The held-out splits (child_safety_prompts.json split=heldout, child_safety_fresh*.json) are never read here:
this is how the classifier's settings are chosen without looking at what `avatar bench safety` measures.
An item's texts (a multi-turn item's turns and their join) stay in one fold. Reports the classifier alone
(nearest examples + probe), per language and per category; the Swift lexicon is not part of it.

    PYTHONPATH=engine ~/.avatar/venv/bin/python scripts/safety_cv.py [--folds 10] [--probe-threshold 0.8]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from avatar_engine import moderation


def rows_with_groups() -> list[tuple[str, str, str, str, str]]:
    """(group, kind, category, language, text) for every training text the classifier learns from."""
    rows = []
    doc = json.loads(moderation.DATA_FILE.read_text(encoding="utf-8"))
    for item in doc["items"]:
        if item["split"] != "train":
            continue
        for kind, category, text in moderation.item_texts(item):
            rows.append((item["id"], kind, category, item["language"], text))
    for path in moderation.EXAMPLE_FILES:
        for i, e in enumerate(json.loads(path.read_text(encoding="utf-8"))["examples"]):
            rows.append((f"{path.name}:{i}", e["kind"], e["category"], e["language"], e["text"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--models-dir", default=os.environ.get("AVATAR_MODELS_DIR", str(Path.home() / ".avatar/models")))
    parser.add_argument("--probe-threshold", type=float, default=moderation.PROBE_THRESHOLD)
    parser.add_argument("--margin", type=float, default=moderation.MARGIN)
    parser.add_argument("--probe-c", type=float, default=moderation.PROBE_C)
    parser.add_argument("--probe-floor", type=float, default=moderation.PROBE_FLOOR)
    parser.add_argument("--self-harm-offset", type=float, default=moderation.CATEGORY_OFFSETS.get("self-harm", 0.0))
    args = parser.parse_args()
    moderation.CATEGORY_OFFSETS["self-harm"] = args.self_harm_offset
    moderation.PROBE_FLOOR = args.probe_floor

    rows = rows_with_groups()
    engine = moderation.ModerationEngine(Path(args.models_dir))
    engine.load()  # the model; its own examples are replaced per fold below
    texts = [r[4] for r in rows]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    cache = Path(args.models_dir) / "e5-small" / f"cv-{key}.npy"
    if cache.is_file():
        vectors = np.load(cache)
    else:
        vectors = np.asarray(engine.model.query(texts), dtype=np.float32)
        np.save(cache, vectors)
    moderation.PROBE_THRESHOLD = args.probe_threshold

    kinds = np.array([r[1] for r in rows])
    categories = np.array([r[2] for r in rows])
    fold = np.array([int(hashlib.sha256(r[0].encode()).hexdigest(), 16) % args.folds for r in rows])
    flagged = np.zeros(len(rows), dtype=bool)
    for f in range(args.folds):
        train, test = fold != f, fold == f
        engine.examples, engine.kinds, engine.categories = vectors[train], kinds[train], categories[train]
        engine.texts = [t for t, keep in zip(texts, train) if keep]
        unit = vectors[train] / np.maximum(np.linalg.norm(vectors[train], axis=1, keepdims=True), 1e-12)
        engine.probe = moderation.fit_probe(unit.astype(np.float64), (kinds[train] != "ordinary").astype(np.float64),
                                            c=args.probe_c)
        verdicts = engine.classify_vectors(vectors[test], args.margin)
        flagged[np.where(test)[0]] = [v["flagged"] for v in verdicts]

    table = collections.defaultdict(lambda: [0, 0])
    for (group, kind, category, language, _), hit in zip(rows, flagged):
        for key in ((kind, language), (kind, "all"), (kind, category, language)):
            table[key][0] += int(hit)
            table[key][1] += 1
    print(f"{len(rows)} training texts, {args.folds} folds, margin {args.margin}, probe C {args.probe_c} "
          f"threshold {args.probe_threshold}, floor {args.probe_floor}, self-harm offset {args.self_harm_offset}")
    for kind, label in (("unsafe", "unsafe caught"), ("ordinary", "ordinary flagged")):
        parts = [f"{lang} {table[(kind, lang)][0]}/{table[(kind, lang)][1]} "
                 f"({100 * table[(kind, lang)][0] / max(table[(kind, lang)][1], 1):.1f} %)" for lang in ("en", "ru", "all")]
        print(f"{label:17s} " + ", ".join(parts))
    for key in sorted(k for k in table if len(k) == 3):
        hit, n = table[key]
        print(f"  {key[0]:8s} {key[1]:20s} {key[2]}  {hit:3d}/{n:3d}  {100 * hit / n:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
