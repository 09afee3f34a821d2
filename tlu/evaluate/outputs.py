"""Backbone features and one head's logits of a whole split in one pass: what validators read.

The same exact, every-example-once extraction as `tlu.evaluate.features` (sharded batches,
padding dropped, all-gathered across processes), with the head run on the features.
"""

import functools

import jax
import jax.numpy as jnp

from tlu.data import loader
from tlu.evaluate import features as features_lib
from tlu.train import mesh as mesh_lib


@functools.lru_cache(maxsize=16)
def _outputs_fn(model, mesh, head):
  """jit(variables, images) -> (B, F + C) float32: features then `head`'s logits."""

  def fn(variables, images):
    if jnp.issubdtype(images.dtype, jnp.integer):
      images = images.astype(jnp.float32) / 255.0
    out = model.apply(variables, images, train=False, heads=(head,))
    return jnp.concatenate([out['features'], out[head]], axis=-1).astype(jnp.float32)

  return jax.jit(fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)),
                 out_shardings=mesh_lib.batch_sharding(mesh))


def extract_outputs(model, variables, source, batch_size, mesh, head='head', num_classes=None):
  """(features (N, F), logits (N, C), labels (N,)) float32 / int numpy of every example of
  `source` ({'image', 'label'}), in its order, on every host; `num_classes` C (default: the
  head's output width read off the result)."""
  batches = loader.eval_batches(source, batch_size, process_index=jax.process_index(),
                                process_count=jax.process_count(), keys=('image', 'label'))
  out = features_lib._extract(  # pylint: disable=protected-access
      model, variables, batches, batch_size, mesh, extra_keys=('label',),
      fn=_outputs_fn(model, mesh, head))
  both = out['features']
  width = num_classes or _head_width(model, variables, head, source)
  return both[:, :-width], both[:, -width:], out['label']


def _head_width(model, variables, head, source):
  image = jnp.asarray(source[0]['image'])[None].astype(jnp.float32) / 255.0
  shape = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, heads=(head,))[head],
                         variables, image)
  return shape.shape[-1]
