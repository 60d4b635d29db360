"""SpRAy's parts on their own: pooling, the eigengap on maps drawn from known blobs, and the
clusters' independence from the photos' order and the eigenvectors' signs."""

from __future__ import annotations

import numpy as np
import pytest

from deepinside.audit import spray as S

CORNERS = [(3.5, 3.5), (12.5, 12.5), (3.5, 12.5), (12.5, 3.5)]


def blob_maps(k: int, per: int, seed: int, grid: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``per`` maps around each of ``k`` corners: a jittered Gaussian of random strength on
    weak uniform noise; and the blob each map was drawn from."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:grid, :grid] + 0.5
    maps, truth = [], []
    for j, (cy, cx) in enumerate(CORNERS[:k]):
        for _ in range(per):
            y0, x0 = cy + rng.normal(0, 0.6), cx + rng.normal(0, 0.6)
            m = rng.uniform(0.5, 2.0) * np.exp(-((ys - y0) ** 2 + (xs - x0) ** 2) / 4.5)
            maps.append(m + rng.uniform(0, 0.05, (grid, grid)))
            truth.append(j)
    return np.array(maps), np.array(truth)


def partition(labels, keys) -> set[frozenset]:
    return {frozenset(k for k, lab in zip(keys, labels) if lab == j) for j in set(labels)}


def test_downsample_is_area_mean():
    rng = np.random.default_rng(0)
    m = rng.random((32, 48))
    d = S.downsample_map(m, 16)
    assert d.shape == (16, 16)
    want = m.reshape(16, 2, 16, 3).mean(axis=(1, 3))  # whole blocks: the plain block mean
    np.testing.assert_allclose(d, want, rtol=1e-6)
    # a map and the same map at another resolution pool to the same grid
    np.testing.assert_allclose(S.downsample_map(np.kron(m, np.ones((3, 3))), 16), d, rtol=1e-5)
    # a side that is not a multiple of the grid: shares of pixels; a constant stays constant
    np.testing.assert_allclose(S.downsample_map(np.full((37, 23), 2.5), 16), 2.5, rtol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        S.downsample_map(np.zeros((3, 4, 5)))


def test_normalize_maps_unit_norm_and_zero_stays_zero():
    x = S.normalize_maps(np.array([[[1.0, -2.0], [0.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]]))
    np.testing.assert_allclose(x[0], np.array([1, 0, 0, 3]) / np.sqrt(10))
    assert not x[1].any()


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eigengap_finds_the_blobs(k, seed):
    maps, truth = blob_maps(k, per=10, seed=seed)
    c = S.spectral_clusters(maps)
    assert c.k == k
    keys = [f"p{i:03d}" for i in range(len(maps))]
    assert partition(c.labels, keys) == partition(truth, keys)


def test_eigengap_on_a_spectrum():
    # three eigenvalues near 0, then a jump: 3; a steady rise: 1
    assert S.eigengap_k(np.array([0.0, 0.01, 0.02, 0.9, 0.95, 1.0])) == 3
    assert S.eigengap_k(np.array([0.0, 0.3, 0.55, 0.75, 0.9, 1.0])) == 1
    assert S.eigengap_k(np.array([0.0])) == 1


def test_same_clusters_for_photos_in_another_order():
    maps, _ = blob_maps(3, per=8, seed=5)
    keys = [f"photo{i:02d}" for i in range(len(maps))]
    first = S.spectral_clusters(maps, keys)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(len(maps))
        again = S.spectral_clusters(maps[perm], [keys[i] for i in perm])
        assert again.k == first.k
        # the same clusters, and the same numbers for them (by size, then smallest key)
        assert {keys[i]: int(lab) for i, lab in zip(perm, again.labels)} == \
            {k: int(lab) for k, lab in zip(keys, first.labels)}


def test_kmeans_ignores_signs_and_rotations_of_the_embedding():
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.normal(c, 0.1, (6, 3)) for c in ([1, 0, 0], [0, 1, 0], [0, 0, 1])])
    keys = [f"k{i}" for i in range(len(y))]
    base = S.kmeans(y, 3, keys)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # any orthogonal change of basis
    for z in (y * np.array([-1, 1, -1]), y @ q):
        np.testing.assert_array_equal(S.kmeans(z, 3, keys), base)
    assert len(set(base.tolist())) == 3


def test_identical_maps_and_small_classes():
    same = np.ones((6, 4, 4))
    c = S.spectral_clusters(same)
    assert len(set(c.labels.tolist())) == 1
    few = S.spectral_clusters(np.random.default_rng(0).random((3, 4, 4)))
    assert few.k == 1 and not few.labels.any()
    with pytest.raises(ValueError, match="keys"):
        S.spectral_clusters(np.ones((5, 2, 2)), ["a"])


def test_a_large_class_is_clustered_on_a_sample_the_same_in_any_order(monkeypatch):
    maps, truth = blob_maps(3, per=20, seed=3)
    keys = [f"p{i:03d}" for i in range(len(maps))]
    sizes = []
    spectrum = S.laplacian_spectrum
    monkeypatch.setattr(S, "laplacian_spectrum", lambda a: (sizes.append(len(a)), spectrum(a))[1])
    c = S.spectral_clusters(maps, keys, max_maps=24)  # 24 of the 60 maps build the spectrum
    assert sizes == [24]
    assert c.k == 3
    assert partition(c.labels, keys) == partition(truth, keys)  # the others join their blob
    order = np.random.default_rng(0).permutation(len(maps))
    d = S.spectral_clusters(maps[order], [keys[i] for i in order], max_maps=24)
    assert partition(d.labels, [keys[i] for i in order]) == partition(c.labels, keys)
    np.testing.assert_allclose(d.eigenvalues, c.eigenvalues, atol=1e-9)
