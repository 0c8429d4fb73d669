"""Grouping questions by meaning: unit vectors (their embeddings) into groups of near neighbours.

Leader clustering, then a refinement pass, in numpy (no clustering library: a number of groups is not
known in advance, the groups are few and well separated, and k-means or HDBSCAN would add a dependency
and cost more at 50k vectors):

1. each vector, in order, joins the group whose running centroid is most similar if that similarity is
   at least ``threshold`` (cosine), else it starts a new group; on large inputs this runs on a sample of
   4,000, then on the vectors no centroid is close to yet (a few rounds);
2. every vector is then reassigned to its most similar final centroid (the order of step 1 no longer
   matters for the membership), centroids are recomputed, and groups whose centroids are at least
   ``threshold`` similar are merged;
3. groups smaller than ``min_size`` are dropped (noise: one-off questions).

docs/analytics.md (Knowledge gaps) has the parameters and benchmarks/gaps.py measures them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.5  # cosine, all-MiniLM-L6-v2: paraphrases of one problem are 0.5-0.9 apart
DEFAULT_MIN_SIZE = 3
SAMPLE = 4000  # vectors per leader round
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Group:
    members: tuple[int, ...]  # indexes into the input, most central first
    centroid: np.ndarray  # unit vector


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def _leaders(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Step 1 on ``vectors``: the centroids of the leader pass."""
    sums = np.zeros((64, vectors.shape[1]), dtype=np.float32)
    norms = np.ones(64, dtype=np.float32)
    count = 0
    for vector in vectors:
        if count:
            similarity = (sums[:count] @ vector) / norms[:count]
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                sums[best] += vector
                norms[best] = np.linalg.norm(sums[best])
                continue
        if count == len(sums):
            sums, norms = np.vstack([sums, np.zeros_like(sums)]), np.concatenate([norms, np.ones_like(norms)])
        sums[count], norms[count] = vector, 1.0
        count += 1
    return sums[:count] / norms[:count, None]


def _centroids(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Step 1 on a sample at a time: the vectors no centroid found yet are the next round's input, so large
    inputs cost a few matrix products and the per-vector loop runs on a few thousand only."""
    rng = np.random.default_rng(0)  # the same groups for the same input
    centroids = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    pending = np.arange(len(vectors))
    for _ in range(MAX_ROUNDS):
        if not len(pending):
            break
        sample = pending if len(pending) <= SAMPLE else np.sort(rng.choice(pending, SAMPLE, replace=False))
        centroids = np.vstack([centroids, _leaders(vectors[sample], threshold)])
        pending = pending[(vectors[pending] @ centroids.T).max(axis=1) < threshold]
    return centroids


def _merge_close(centroids: np.ndarray, sizes: np.ndarray, threshold: float) -> np.ndarray:
    """Step 2's merge: a label per centroid, close centroids sharing the label of the larger group."""
    labels = np.arange(len(centroids))
    similarity = centroids @ centroids.T
    for i in np.argsort(-sizes):
        if labels[i] != i:
            continue
        close = np.where((similarity[i] >= threshold) & (labels == np.arange(len(centroids))))[0]
        labels[close] = i
    return labels


def group_vectors(
    vectors: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD, min_size: int = DEFAULT_MIN_SIZE
) -> list[Group]:
    """Groups of ``vectors`` (rows), largest first."""
    if len(vectors) == 0:
        return []
    vectors = _unit(np.asarray(vectors, dtype=np.float32))
    centroids = _centroids(vectors, threshold)
    assignment = np.argmax(vectors @ centroids.T, axis=1)
    sizes = np.bincount(assignment, minlength=len(centroids))
    centroids = _unit(
        np.stack([vectors[assignment == k].sum(axis=0) if sizes[k] else centroids[k] for k in range(len(centroids))])
    )
    assignment = _merge_close(centroids, sizes, threshold)[assignment]
    groups = []
    for label in np.unique(assignment):
        members = np.where(assignment == label)[0]
        if len(members) < min_size:
            continue
        centroid = _unit(vectors[members].sum(axis=0))
        order = members[np.argsort(-(vectors[members] @ centroid), kind="stable")]
        groups.append(Group(members=tuple(int(i) for i in order), centroid=centroid))
    return sorted(groups, key=lambda group: (-len(group.members), group.members[0]))
