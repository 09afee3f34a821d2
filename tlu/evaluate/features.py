"""Frozen-backbone features of a whole split: the input of every feature-transfer evaluator.

Why a module of its own: the linear probe, kNN, k-means and the anomaly scores all
consume the same (N, F) matrix, and it must be exact whatever the device or process
count: every example once, in the split's order, padding dropped. Batches are
sharded on the mesh's `data` axis like training batches, so a pod extracts its
features in parallel; the result is gathered to every host as numpy.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec as P

from tlu.data import loader
from tlu.train import mesh as mesh_lib


@functools.lru_cache(maxsize=16)
def _feature_fn(model, mesh):
  """jit(variables, images) -> (B, F) float32 features, images sharded on `data`.

  Cached per (model, mesh) so repeated extractions reuse one compiled program per
  batch shape (flax modules and meshes are hashable).
  """

  def fn(variables, images):
    if jnp.issubdtype(images.dtype, jnp.integer):
      images = images.astype(jnp.float32) / 255.0
    return model.apply(variables, images, train=False)['features'].astype(jnp.float32)

  return jax.jit(fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)),
                 out_shardings=mesh_lib.batch_sharding(mesh))


def l2_normalize(x):
  """Rows of x (N, F) as float32 numpy, scaled to unit L2 norm (zero rows stay zero)."""
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _array_batches(images, global_batch, process_index, process_count):
  """eval_batches for an in-memory array: same per-process order, padding and mask."""
  local = global_batch // process_count
  mine = np.arange(process_index, len(images), process_count)
  per_process = -(-len(images) // process_count)
  steps = -(-per_process // local)
  for s in range(steps):
    idx = mine[s * local:(s + 1) * local]
    batch = np.zeros((local,) + images.shape[1:], images.dtype)
    batch[:len(idx)] = images[idx]
    yield {'image': batch, 'mask': np.arange(local) < len(idx)}


def merge_process_slices(features, masks):
  """Per-process padded outputs -> rows in the split's original order.

  Process p holds examples p, p + P, p + 2P, ... (see `loader.eval_batches`), padded
  to a common length L, so reading the (P, L) grid column by column restores the
  original order.

  Args:
    features: (P, L, ...) outputs of each of the P processes.
    masks: (P, L) bool, True for real (non-padding) rows.

  Returns:
    (N, ...) with N = masks.sum().
  """
  features, masks = np.asarray(features), np.asarray(masks, bool)
  order = np.swapaxes(features, 0, 1).reshape((-1,) + features.shape[2:])
  return order[np.swapaxes(masks, 0, 1).reshape(-1)]


def _extract(model, variables, batches, batch_size, mesh, extra_keys=(), fn=None):
  """Runs the cached feature fn (or `fn`, jit(variables, images) -> (B, ...) sharded on
  `data`) over process-local batches; gathers in original order."""
  if batch_size % mesh.size:
    raise ValueError(f'batch_size {batch_size} is not divisible by the {mesh.size} devices '
                     'of the mesh')
  fn = fn or _feature_fn(model, mesh)
  variables = jax.device_put(variables, mesh_lib.replicated(mesh))
  feats, masks, extras = [], [], {k: [] for k in extra_keys}
  for batch in batches:
    images = mesh_lib.to_global(batch['image'], mesh)
    out = fn(variables, images)
    feats.append(multihost_utils.global_array_to_host_local_array(out, mesh, P(mesh_lib.DATA)))
    masks.append(batch['mask'])
    for k in extra_keys:
      extras[k].append(batch[k])
  if not feats:
    raise ValueError('cannot extract features of an empty split')
  # Fetch after the loop so host-side batching overlaps with device compute.
  local = {'features': np.concatenate([np.asarray(f) for f in feats]),
           'mask': np.concatenate(masks), **{k: np.concatenate(v) for k, v in extras.items()}}
  if jax.process_count() > 1:
    gathered = multihost_utils.process_allgather(local)  # each leaf (P, L, ...)
  else:
    gathered = jax.tree.map(lambda x: x[None], local)
  mask = gathered.pop('mask')
  return {k: merge_process_slices(v, mask) for k, v in gathered.items()}


def extract_features(model, variables, source, batch_size, mesh):
  """Features and labels of every example of `source`, in its order, on every host.

  Each process reads its own slice of the split (`loader.eval_batches`); batches of
  `batch_size` (global) are sharded over the mesh's `data` axis; padding rows are
  dropped and, with several processes, the slices are all-gathered, so every process
  returns the same full arrays.

  Args:
    model: a flax Model whose apply(...)['features'] is (B, F).
    variables: its variables ({'params', 'batch_stats'?}); used in eval mode.
    source: random-access source of {'image': (H, W, C) uint8, 'label': int}.
    batch_size: global batch, divisible by the number of devices in `mesh`.
    mesh: mesh with a `data` axis (tlu.train.mesh.make_mesh()).

  Returns:
    (features (N, F) float32, labels (N,)) numpy arrays, N = len(source).
  """
  batches = loader.eval_batches(source, batch_size, process_index=jax.process_index(),
                                process_count=jax.process_count(), keys=('image', 'label'))
  out = _extract(model, variables, batches, batch_size, mesh, extra_keys=('label',))
  return out['features'], out['label']


def extract_arrays_features(model, variables, images, batch_size, mesh):
  """Features of an in-memory image array, in its order, on every host.

  Every process passes the same full array and computes its own slice of it, as
  `extract_features` does with a source.

  Args:
    model, variables, batch_size, mesh: as for `extract_features`.
    images: (N, H, W, C); integer dtypes are uint8 pixels (divided by 255), float
      dtypes are taken to be in [0, 1] already.

  Returns:
    (N, F) float32 numpy features.
  """
  images = np.asarray(images)
  batches = _array_batches(images, batch_size, jax.process_index(), jax.process_count())
  return _extract(model, variables, batches, batch_size, mesh)['features']
