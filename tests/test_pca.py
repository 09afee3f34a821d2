"""PCA against scikit-learn: variances, axes and projections (up to sign), whitening."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from tlu.unsupervised import pca as pca_lib


@pytest.fixture(scope='module')
def data():
  rng = np.random.default_rng(0)
  mixing = rng.normal(size=(6, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])[:, None]
  return (rng.normal(size=(500, 6)) @ mixing + 10.0).astype(np.float32)


def test_matches_sklearn_up_to_sign(data):
  state = pca_lib.pca_fit(data, 3)
  ref = PCA(n_components=3).fit(data.astype(np.float64))
  np.testing.assert_allclose(np.asarray(state.explained_variance), ref.explained_variance_,
                             rtol=1e-4)
  np.testing.assert_allclose(np.asarray(state.explained_variance_ratio),
                             ref.explained_variance_ratio_, rtol=1e-4)
  comps = np.asarray(state.components)
  signs = np.sign((comps * ref.components_).sum(1))
  np.testing.assert_allclose(comps * signs[:, None], ref.components_, atol=1e-4)
  z = np.asarray(pca_lib.pca_transform(state, data))
  np.testing.assert_allclose(z * signs, ref.transform(data.astype(np.float64)), atol=2e-3)


def test_sign_convention_largest_entry_positive(data):
  comps = np.asarray(pca_lib.pca_fit(data, 4).components)
  assert (comps[np.arange(4), np.abs(comps).argmax(1)] > 0).all()
  np.testing.assert_allclose(comps @ comps.T, np.eye(4), atol=1e-5)


def test_whitening_gives_identity_covariance(data):
  state = pca_lib.pca_fit(data, 4, whiten=True)
  z = np.asarray(pca_lib.pca_transform(state, data), np.float64)
  np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(4), atol=1e-3)
  back = np.asarray(pca_lib.pca_inverse_transform(state, z))
  full = PCA(n_components=4).fit(data.astype(np.float64))
  np.testing.assert_allclose(back, full.inverse_transform(full.transform(data)), atol=2e-3)
