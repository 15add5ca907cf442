"""The search index of one knowledge revision: BM25 over Spanish-analysed chunks, optionally fused with vectors.

An index is built from the chunks in the database, saved on disk under its revision
and memory-mapped back, so a restart loads it instead of re-indexing.
"""

import math
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from bedel.llm.ports import Passage
from bedel.terms import SYNONYMS_DIGEST, analyze, nearest, spell_out, spellings

# Bump when the analysis or the saved layout changes: indexes saved by older code are rebuilt.
INDEX_FORMAT = 4
# Reciprocal rank fusion constant (Cormack et al.): ranks past a few dozen barely count.
RRF_K = 60
FUSION_DEPTH = 50
# A term most of the documents hold (the school's name or initials, a footer's words) tells little
# about which passage answers: it counts at this share of its weight, where there are enough documents
# to tell.
COMMON_SHARE = 0.8
COMMON_WEIGHT = 0.5
COMMON_MIN_DOCUMENTS = 5
_EMBEDDINGS = "embeddings.npy"


@dataclass(frozen=True)
class Query:
    """Terms of the question, weighted over the terms of the recent turns that give it context."""

    question: list[str]
    context: list[str]
    vector: list[float] | None = None

    @classmethod
    def from_text(cls, question: str, context: Sequence[str] = (), vector: list[float] | None = None) -> "Query":
        """The terms of what students write: chat shortcuts spelt out first ("q", "x", "pa")."""
        return cls(analyze(spell_out(question)), analyze(spell_out(" ".join(context))), vector)

    def corrected(self, spelling: Callable[[str], str]) -> "Query":
        return Query([spelling(t) for t in self.question], [spelling(t) for t in self.context], self.vector)

    @property
    def weights(self) -> dict[str, float]:
        """For ranking: the question's terms count twice the context's."""
        weights = dict.fromkeys(self.context, 1.0)
        weights.update(dict.fromkeys(self.question, 2.0))
        return weights

    @property
    def judged(self) -> dict[str, float]:
        """For relevance: the question's own terms, so earlier topics never make an off-topic
        question look answered; the context counts only when the question has no term of its own."""
        return dict.fromkeys(self.question, 1.0) if self.question else self.weights


class SearchIndex:
    def __init__(
        self,
        revision: str,
        retriever: bm25s.BM25 | None,
        corpus: Any,
        vectors: np.ndarray | None,
    ) -> None:
        self.revision = revision
        self._retriever = retriever
        self._corpus = corpus
        self._vectors = vectors
        # Spellings a misspelt term may be corrected to, and the index term each stands for; made at first need.
        self._known: dict[str, str] | None = None
        self._spellings: list[str] = []
        self._corrections: dict[str, str] = {}
        # Ids of the terms most documents hold; made at first need.
        self._common: frozenset[int] | None = None

    @property
    def size(self) -> int:
        return 0 if self._retriever is None else int(self._retriever.scores["num_docs"])

    @classmethod
    def empty(cls, revision: str) -> "SearchIndex":
        return cls(revision, None, [], None)

    @classmethod
    def build(cls, revision: str, rows: Sequence[dict[str, Any]]) -> "SearchIndex":
        """Index `rows` (chunk id, document id, title, heading, text, embedding). CPU-bound: run it off the loop."""
        if not rows:
            return cls.empty(revision)
        corpus = [
            {"id": row["id"], "d": str(row["document_id"]), "t": row["title"], "h": row["heading"], "x": row["text"]}
            for row in rows
        ]
        retriever = bm25s.BM25()
        retriever.index([analyze(_indexed_text(entry)) or [""] for entry in corpus], show_progress=False)
        vectors = None
        dimensions = {len(row["embedding"]) for row in rows if row["embedding"]}
        if len(dimensions) == 1:
            vectors = np.zeros((len(rows), dimensions.pop()), dtype=np.float32)
            for position, row in enumerate(rows):
                if row["embedding"]:
                    vectors[position] = _unit(row["embedding"])
        return cls(revision, retriever, corpus, vectors)

    def save(self, root: Path) -> bool:
        """Write under `root` atomically (readers see a whole index or none); False if it cannot be written."""
        target = root / directory_name(self.revision)
        if self._retriever is None or target.exists():
            return True
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
        except OSError:
            return False
        try:
            self._retriever.save(staging, corpus=self._corpus, show_progress=False)
            if self._vectors is not None:
                np.save(staging / _EMBEDDINGS, self._vectors)
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            # Another process may have saved the same revision first.
            return target.exists()
        return True

    @classmethod
    def load(cls, root: Path, revision: str) -> "SearchIndex | None":
        directory = root / directory_name(revision)
        if not directory.is_dir():
            return None
        retriever = bm25s.BM25.load(directory, load_corpus=True, mmap=True, show_progress=False)
        vectors_path = directory / _EMBEDDINGS
        vectors = np.load(vectors_path, mmap_mode="r") if vectors_path.exists() else None
        return cls(revision, retriever, retriever.corpus, vectors)

    def search(self, query: Query, limit: int) -> list[Passage]:
        if self._retriever is None:
            return []
        query = query.corrected(self.spelling)
        lexical = self._lexical_scores(query.weights)
        dense = self._dense_scores(query.vector)
        if lexical is None and dense is None:
            return []
        ranked = _fuse(lexical, dense, max(limit, FUSION_DEPTH) if dense is not None else limit)
        passages = []
        for position, score in ranked[:limit]:
            entry = self._corpus[position]
            passages.append(
                Passage(
                    chunk_id=int(entry["id"]),
                    document_id=entry["d"],
                    title=entry["t"],
                    heading=entry["h"],
                    text=entry["x"],
                    score=round(float(score), 4),
                    relevance=self._relevance(query.judged, set(analyze(_indexed_text(entry)))),
                )
            )
        return passages

    def _lexical_scores(self, weights: dict[str, float]) -> np.ndarray | None:
        """BM25 of each term of the query, times its weight; a term most documents hold counts less."""
        assert self._retriever is not None
        common = self._common_terms()
        lexical = None
        for term, weight in weights.items():
            if (term_id := self._retriever.vocab_dict.get(term)) is None:
                continue
            share = COMMON_WEIGHT if term_id in common else 1.0
            scores = self._retriever.get_scores_from_ids([term_id]) * (weight * share)
            lexical = scores if lexical is None else lexical + scores
        return lexical

    def _common_terms(self) -> frozenset[int]:
        """The ids of the terms held by at least COMMON_SHARE of the documents (not passages)."""
        assert self._retriever is not None
        if self._common is None:
            documents = [entry["d"] for entry in self._corpus]
            total = len(set(documents))
            indptr, indices = self._retriever.scores["indptr"], self._retriever.scores["indices"]

            def holding(term_id: int) -> int:
                return len({documents[int(i)] for i in indices[indptr[term_id] : indptr[term_id + 1]]})

            terms = range(len(indptr) - 1) if total >= COMMON_MIN_DOCUMENTS else range(0)
            self._common = frozenset(term_id for term_id in terms if holding(term_id) >= COMMON_SHARE * total)
        return self._common

    def spelling(self, term: str) -> str:
        """`term`, or the index's term it misspells (the more frequent one on a tie)."""
        assert self._retriever is not None
        if term in self._retriever.vocab_dict:
            return term
        if term not in self._corrections:
            if self._known is None:
                self._known = spellings(self._retriever.vocab_dict)
                self._spellings = list(self._known)
            found = nearest(term, self._known, self._spellings)
            # Bounded: a stream of odd words must not grow the process.
            if len(self._corrections) >= 10_000:
                return max(found, key=lambda t: (self._frequency(t), t)) if found else term
            self._corrections[term] = max(found, key=lambda t: (self._frequency(t), t)) if found else term
        return self._corrections[term]

    def _frequency(self, term: str) -> int:
        assert self._retriever is not None
        term_id = self._retriever.vocab_dict.get(term)
        indptr = self._retriever.scores["indptr"]
        return 0 if term_id is None else int(indptr[term_id + 1] - indptr[term_id])

    def _relevance(self, weights: dict[str, float], terms: set[str]) -> float:
        """The IDF-weighted share of the query's terms that the passage holds."""
        total = found = 0.0
        for term, weight in weights.items():
            mass = weight * self._idf(term)
            total += mass
            if term in terms:
                found += mass
        return round(found / total, 4) if total else 0.0

    def _idf(self, term: str) -> float:
        assert self._retriever is not None
        documents = self.size
        frequency = self._frequency(term)
        return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))

    def _dense_scores(self, vector: list[float] | None) -> np.ndarray | None:
        if vector is None or self._vectors is None or len(vector) != self._vectors.shape[1]:
            return None
        return np.asarray(self._vectors @ _unit(vector))


_DIRECTORY = re.compile(r"[0-9a-f]{32}-\d+-[0-9a-f]{16}")


def is_index_directory(name: str) -> bool:
    return bool(_DIRECTORY.fullmatch(name))


def directory_name(revision: str) -> str:
    """Where a revision's index lives; code with other analysis (format, synonyms) looks elsewhere."""
    return f"{revision}-{INDEX_FORMAT}-{SYNONYMS_DIGEST}"


def _fuse(lexical: np.ndarray | None, dense: np.ndarray | None, depth: int) -> list[tuple[int, float]]:
    """Rank by BM25 alone, or by reciprocal rank fusion of BM25 and vector similarity."""
    if dense is None:
        assert lexical is not None
        top = _top(lexical, depth)
        return [(int(i), float(lexical[i])) for i in top if lexical[i] > 0]
    fused: dict[int, float] = {}
    for scores in (lexical, dense):
        if scores is None:
            continue
        for rank, position in enumerate(_top(scores, depth)):
            if scores[position] > 0:
                fused[int(position)] = fused.get(int(position), 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    depth = min(depth, len(scores))
    candidates = np.argpartition(-scores, depth - 1)[:depth]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def _unit(vector: Sequence[float]) -> np.ndarray:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return array / norm if norm else array


def _indexed_text(entry: dict[str, Any]) -> str:
    # The heading path counts twice: a section's title says what its passages are about.
    return f"{entry['t']}\n{entry['h']}\n{entry['h']}\n{entry['x']}"
