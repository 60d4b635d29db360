"""SpRAy, spectral relevance analysis: the strategies of one class, as clusters of its maps.

Lapuschkin, Wäldchen, Binder, Montavon, Samek & Müller (2019), "Unmasking Clever Hans
predictors and assessing what machines really learn", Nature Communications 10:1096,
https://doi.org/10.1038/s41467-019-08987-4:

1. each photo's map for the class is pooled to a small grid (:func:`downsample_map`, area
   averaging, :data:`GRID` cells a side, whatever the photo's aspect ratio: positions are
   fractions of the photo) and normalised (:func:`normalize_maps`: negatives clipped, unit
   Euclidean norm, so two maps are close when they put their evidence in the same places);
2. an affinity between the maps (:func:`affinity`): a Gaussian of their distance with a local
   scale per map, its distance to its k-th nearest neighbour (Zelnik-Manor & Perona 2004,
   "Self-tuning spectral clustering"; a soft form of the paper's k-nearest-neighbour graph);
3. the spectrum of its normalised Laplacian ``I - D^-1/2 A D^-1/2`` (:func:`laplacian_spectrum`);
   the number of clusters is where the gap between consecutive eigenvalues is largest
   (:func:`eigengap_k`, the eigengap heuristic the paper reads off its spectra), counting
   only gaps larger than the eigenvalue below them;
4. the rows of the first ``k`` eigenvectors, scaled to unit length (Ng, Jordan & Weiss 2001),
   are clustered by k-means (:func:`spectral_clusters`).

A class with more than :data:`MAX_SPECTRAL` maps is clustered on that many of them (chosen by a
hash of their keys) and the others join the nearest cluster, so its memory stays bounded (the
affinity is ``N x N``) however many photos the class has.

Deterministic and independent of the photos' order: the affinity depends on distances only,
k-means starts from the farthest-point seeds
chosen by distances alone (an exact tie goes to the smaller key), and the clusters are numbered
by size, then by their smallest key. Nothing depends on the eigenvectors' signs or on their
rotation inside a repeated eigenvalue: k-means only sees distances between rows, which an
orthogonal change of basis keeps.

NumPy only (no torch, no scikit-learn).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "GRID",
    "Clustering",
    "affinity",
    "downsample_map",
    "eigengap_k",
    "kmeans",
    "laplacian_spectrum",
    "normalize_maps",
    "spectral_clusters",
]

GRID = 16  # cells a side of a downsampled map
MIN_PHOTOS = 4  # fewer maps than this are one cluster (no spectrum to read)
MAX_K = 8  # at most this many strategies a class
MAX_SPECTRAL = 1000  # a class's spectrum is read off at most this many maps (memory N^2)
_TIE = 1e-9  # scores closer than this are a tie (broken by key, never by position)


def downsample_map(m: np.ndarray, grid: int = GRID) -> np.ndarray:
    """A map ``(H, W)`` -> ``(grid, grid)`` float32, each cell the mean of the pixels it covers.

    Exact area averaging (a pixel split between two cells counts in each by its share), so a
    map and the same map at another resolution pool to the same grid; non-finite values are 0.
    """
    a = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"a map must be (H, W), got shape {a.shape}")
    return (_area_matrix(a.shape[0], grid) @ a @ _area_matrix(a.shape[1], grid).T
            ).astype(np.float32)


def _area_matrix(n: int, grid: int) -> np.ndarray:
    """``(grid, n)``: row i averages the pixels of [i n / grid, (i + 1) n / grid)."""
    edges = np.arange(grid + 1) * (n / grid)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return overlap / (n / grid)


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """``(N, ...)`` maps -> ``(N, D)`` float64 vectors: negatives clipped, unit Euclidean norm
    (a map that is zero everywhere stays zero)."""
    x = np.clip(np.asarray(maps, dtype=np.float64).reshape(len(maps), -1), 0.0, None)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _distances(x: np.ndarray) -> np.ndarray:
    sq = (x * x).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0, None)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def affinity(x: np.ndarray, neighbours: int | None = None) -> np.ndarray:
    """The symmetric affinity ``(N, N)`` of vectors ``x`` ``(N, D)``, zero on the diagonal.

    ``A_ij = exp(-d_ij^2 / (s_i s_j))``, where ``s_i`` is i's distance to its
    ``neighbours``-th nearest vector: Zelnik-Manor & Perona's local scale, a soft k-nearest-
    neighbour graph (SpRAy's kNN affinity without the hard cut, so no edge depends on which of
    two equally near vectors comes first). Default ``neighbours``: ``round(ln N)``, 2 to 7.
    """
    n = len(x)
    if n < 2:
        return np.zeros((n, n))
    k = min(n - 1, neighbours or min(7, max(2, int(round(np.log(n))))))
    d = _distances(x)
    s = np.maximum(np.sort(d, axis=1)[:, k], 1e-12)  # column 0 is the vector itself
    a = np.exp(-(d * d) / (s[:, None] * s[None, :]))
    np.fill_diagonal(a, 0.0)
    return a


def laplacian_spectrum(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of ``I - D^-1/2 A D^-1/2``."""
    deg = a.sum(1)
    inv = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    lap = np.eye(len(a)) - inv[:, None] * a * inv[None, :]
    vals, vecs = np.linalg.eigh(0.5 * (lap + lap.T))
    return np.clip(vals, 0.0, None), vecs


def eigengap_k(eigenvalues: np.ndarray, max_k: int = MAX_K) -> int:
    """The number of clusters from the Laplacian's ascending eigenvalues ``l_1 <= l_2 <= ...``.

    The k in 1..max_k with the largest gap ``l_{k+1} - l_k`` among those where the gap exceeds
    ``l_k`` itself (k clusters are only told apart when the first k eigenvalues are near 0,
    far below the next; a steady rise of the spectrum, one spread-out strategy, gives 1). The
    smallest such k on a tie.
    """
    vals = np.asarray(eigenvalues, dtype=np.float64)
    top = min(max_k, len(vals) - 1)
    if top < 1:
        return 1
    gaps = vals[1:top + 1] - vals[:top]
    gaps = np.where(gaps > vals[:top], gaps, -1.0)
    return int(np.flatnonzero(gaps >= gaps.max() - _TIE)[0]) + 1


def _order_keys(keys: Sequence[str] | None, n: int) -> list:
    if keys is None:
        return list(range(n))
    if len(keys) != n:
        raise ValueError(f"got {len(keys)} keys for {n} maps")
    return list(keys)


def _pick(scores: np.ndarray, keys: list, allowed: np.ndarray) -> int:
    """The index of the highest score among ``allowed``; a tie goes to the smallest key."""
    best = scores[allowed].max()
    cands = [i for i in np.flatnonzero(allowed) if scores[i] >= best - _TIE]
    return min(cands, key=lambda i: keys[i])


def kmeans(y: np.ndarray, k: int, keys: Sequence[str] | None = None,
           iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means of rows ``y`` ``(N, D)`` from deterministic farthest-point seeds.

    The first seed is the row closest on average to all others (the most central); each next
    seed is the row farthest from the seeds so far. Ties go to the smaller key (default: the
    position). Returns one label in ``0..k-1`` per row.
    """
    n = len(y)
    keys_ = _order_keys(keys, n)
    if k <= 1 or n <= 1:
        return np.zeros(n, dtype=int)
    k = min(k, n)
    d = _distances(y)
    seeds = [_pick(-d.mean(1), keys_, np.ones(n, bool))]
    while len(seeds) < k:
        free = np.ones(n, bool)
        free[seeds] = False
        seeds.append(_pick(d[:, seeds].min(1), keys_, free))
    centres = y[seeds].copy()
    labels = np.full(n, -1)
    for _ in range(iterations):
        dc = ((y[:, None, :] - centres[None]) ** 2).sum(-1)
        new = np.array([int(np.flatnonzero(row <= row.min() + _TIE)[0]) for row in dc])
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                centres[j] = y[labels == j].mean(0)
    return labels


@dataclass
class Clustering:
    """The strategies of one class.

    Attributes:
        labels: one cluster per map, ``0`` the largest cluster.
        k: the number of clusters.
        eigenvalues: the smallest eigenvalues of the normalised Laplacian (up to ``MAX_K + 1``),
            for the eigengap plot.
    """

    labels: np.ndarray
    k: int
    eigenvalues: np.ndarray


def spectral_clusters(maps: np.ndarray, keys: Sequence[str] | None = None, *,
                      k: int | None = None, neighbours: int | None = None,
                      max_k: int = MAX_K, max_maps: int = MAX_SPECTRAL) -> Clustering:
    """Cluster one class's maps ``(N, h, w)`` (already downsampled) by SpRAy.

    Args:
        maps: the maps, e.g. :func:`downsample_map` of each photo's map for the class.
        keys: a stable name per map (the photos' keys), to break exact ties by name rather
            than by position; the result is then the same for the maps in any order.
        k: the number of clusters (default: :func:`eigengap_k`).
        neighbours: see :func:`affinity`.
        max_k: the most clusters the eigengap may choose.
        max_maps: a class with more maps is clustered on ``max_maps`` of them (a sample fixed
            by a hash of their keys, so the same for the maps in any order), and every other
            map joins the cluster whose mean unit map is nearest: the affinity and the
            Laplacian are ``(N, N)``, so memory and time stay bounded however many photos a
            class has.

    Returns:
        :class:`Clustering`; clusters numbered by size (largest first), then by smallest key.
        Fewer than :data:`MIN_PHOTOS` maps are one cluster.
    """
    x = normalize_maps(maps)
    n = len(x)
    keys_ = _order_keys(keys, n)
    if n < MIN_PHOTOS and k is None:
        return Clustering(np.zeros(n, dtype=int), 1 if n else 0, np.zeros(0))
    if n > max_maps:
        return _sampled_clusters(x, keys_, k, neighbours, max_k, max_maps)
    vals, vecs = laplacian_spectrum(affinity(x, neighbours))
    kk = min(k if k is not None else eigengap_k(vals, max_k), n)
    u = vecs[:, :kk]
    u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-12)
    return _numbered(kmeans(u, kk, keys_), keys_, vals[:max_k + 1])


def _sampled_clusters(x: np.ndarray, keys: list, k: int | None, neighbours: int | None,
                      max_k: int, max_maps: int) -> Clustering:
    """:func:`spectral_clusters` of ``max_maps`` unit maps ``x`` ``(N, D)`` chosen by a hash
    of their keys; the others join the cluster with the nearest mean (ties: the larger)."""
    def digest(key) -> bytes:
        return hashlib.sha1(str(key).encode()).digest()

    sample = np.array(sorted(range(len(x)), key=lambda i: (digest(keys[i]), keys[i]))[:max_maps])
    part = spectral_clusters(x[sample], [keys[i] for i in sample], k=k, neighbours=neighbours,
                             max_k=max_k, max_maps=max_maps)
    centres = np.stack([x[sample[part.labels == j]].mean(0) for j in range(part.k)])
    d = ((x * x).sum(1)[:, None] + (centres * centres).sum(1)[None]
         - 2.0 * x @ centres.T)  # (N, k) squared distances
    raw = np.array([int(np.flatnonzero(row <= row.min() + _TIE)[0]) for row in d])
    raw[sample] = part.labels
    return _numbered(raw, keys, part.eigenvalues)


def _numbered(raw: np.ndarray, keys_: list, eigenvalues: np.ndarray) -> Clustering:
    """Clusters renumbered by size (largest first), then by smallest key."""
    groups = sorted(set(raw.tolist()),
                    key=lambda j: (-(raw == j).sum(), min(keys_[i] for i in np.flatnonzero(
                        raw == j))))
    relabel = {j: r for r, j in enumerate(groups)}
    labels = np.array([relabel[j] for j in raw], dtype=int)
    return Clustering(labels, len(groups), eigenvalues)
