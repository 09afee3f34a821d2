"""DELTA (Li, Xiong, Wang, Huan, Liu, Xu, Chen & Huan 2019, ICLR, "DELTA: Deep Learning Transfer
using Feature Map with Attention for Convolutional Networks"): fine-tuning that keeps the
feature maps of chosen layers near the source model's, each channel weighted by how much
the source model's target loss depends on it, plus L2 of the new layers.

  loss = CE + alpha * Omega(w) + beta / 2 ||w_{not S}||^2
  Omega(w) = sum_j 0.5 * sum_{b, c} C_j * W_jc * ||FM_jc(w, x_b) - FM_jc(w^0, x_b)||^2 / HW_j

FM_j (B, H, W, C_j) is the output of layer j (a Conv or Dense module, HW_j = 1 for a Dense;
captured with Flax's `capture_intermediates`) under the fine-tuned weights w and under the
source model w^0 (the shared leaves, `backbone/.*` by default, at the first step, and their
BatchNorm statistics, in inference mode; kept in the method state, `extra['source']` and
`extra['source_stats']`, as L2-SP keeps its source weights); the source maps carry no
gradient. Sums over the batch, not means, as TLlib's AttentionBehavioralRegularization
(`tllib/regularization/delta.py`); `attention=False` is its BehavioralRegularization,
0.5 * sum ||FM_j(w) - FM_j(w^0)||^2, without the C_j / HW_j. The leaves outside `shared`
(the head) get beta / 2 ||w||^2, TLlib's head L2Regularization. TLlib's defaults: alpha =
beta = 0.01.

Channel attention (TLlib's `calculate_channel_attention` in examples/task_adaptation/
image_classification/delta.py; the paper, section 3.3): for each channel c of layer j,
the increase of the mean cross-entropy on a training batch when c's kernel slice
(`kernel[..., c]`; the bias stays, as TLlib zeroes only the weight) is set to zero,
averaged over the first `attention_batches` batches of the training split (TLlib: 10);
then W_j = softmax(z_j / 5), z_j those increases standardised over the layer's channels
(a layer whose channels all give the same increase gets uniform weights, where TLlib's
division by a zero deviation gives NaN). It is computed on the host before the first step
(`host_update`, as SHOT's pseudo-labels) from the model as it starts, in inference mode,
and kept in `extra['attention']`, so a resumed run reads it from its checkpoint.
A faithful simplification, from what the method is given: TLlib first trains a classifier
on the target data for `attention_epochs` (10) and measures with it; here the head the run
starts with measures, without a pre-training of its own. With the lp_ft strategy that head
is the linear-probed one (the paper's own setting: the source network with a retrained
classifier); with a fresh head the attention reflects that head. The batches are read in
order without augmentation (TLlib: shuffled, augmented) at the evaluation batch size.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.l2sp import l2sp_terms
from tlu.methods.supervised import Supervised
from tlu.train import mesh as mesh_lib
from tlu.transfer.paths import flatten, match_any, unflatten

MAPS, SOURCE_MAPS = '_delta_maps', '_delta_source_maps'   # forward -> loss_fn, then dropped


def feature_map_distance(maps, source_maps, attention=None):
  """Omega: {layer: (B, ..., C)} fine-tuned and source maps (and {layer: (C,)} attention, or
  None for the plain distance) -> (). The source maps carry no gradient."""
  total = jnp.zeros(())
  for name, fm in maps.items():
    diff = fm.astype(jnp.float32) - jax.lax.stop_gradient(source_maps[name]).astype(jnp.float32)
    if attention is None:
      total += 0.5 * jnp.sum(jnp.square(diff))
      continue
    b, c = diff.shape[0], diff.shape[-1]
    diff = diff.reshape(b, -1, c)   # (B, HW, C)
    hw = diff.shape[1]
    total += 0.5 * jnp.sum(c * attention[name] * jnp.sum(jnp.square(diff), 1) / hw)
  return total


def attention_from_increases(increases):
  """(C,) mean loss increases of one layer -> softmax(z / 5), z standardised (uniform if flat)."""
  w = np.asarray(increases, np.float64)
  std = np.std(w)
  z = (w - np.mean(w)) / std if std > 0 else np.zeros_like(w)
  e = np.exp(z / 5 - np.max(z / 5))
  return (e / e.sum()).astype(np.float32)


def _regexes(config, key):
  value = config.get(key)
  if isinstance(value, str) or not value:
    raise ValueError(f'method.{key}={value!r} must be a tuple of path regexes, e.g. '
                     "('backbone/.*',)")
  for regex in value:
    try:
      re.compile(regex)
    except (re.error, TypeError) as e:
      raise ValueError(f'method.{key}: {regex!r} is not a regex ({e})') from None


@METHODS.register('delta')
class Delta(Supervised):
  """Supervised cross-entropy (`tlu.methods.supervised`) plus DELTA's feature-map penalty.

  config: Supervised's; alpha >= 0 (the feature maps' weight), beta >= 0 (L2 of the leaves
  outside `shared`), shared: regexes of the source model's leaves, layers: regexes of the
  module paths whose outputs are regularised (modules with a `kernel` inside `shared`),
  attention: True (channel attention) or False (plain distance), attention_batches >= 1.
  Method state: extra['source'], extra['source_stats'] (if the model has BatchNorm),
  extra['attention'] (with attention): {layer path: (C,)}, nested as the parameters.
  """
  ranges = {**Supervised.ranges, 'alpha': checks.NON_NEGATIVE, 'beta': checks.NON_NEGATIVE,
            'attention': checks.FLAG, 'attention_batches': checks.POSITIVE_INT}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'alpha': 0.01, 'beta': 0.01,
            'shared': ('backbone/.*',), 'layers': ('backbone/.*',), 'attention': True,
            'attention_batches': 2}

  @classmethod
  def check(cls, config):
    super().check(config)
    _regexes(config, 'shared')
    _regexes(config, 'layers')

  def layer_paths(self, params):
    """The sorted module paths the penalty reads: kernels' modules matching `layers`."""
    return sorted(p[:-len('/kernel')] for p in flatten(params)
                  if p.endswith('/kernel') and match_any(p[:-len('/kernel')],
                                                         tuple(self.config.layers)))

  def init_extra(self, variables, rng):
    shared = tuple(self.config.shared)
    params = variables['params']
    start = {p: jnp.asarray(w, jnp.float32) for p, w in flatten(params).items()
             if match_any(p, shared)}
    if not start:
      raise ValueError(f'method.shared={shared} names no parameter of the model')
    layers = self.layer_paths(params)
    if not layers:
      raise ValueError(f'method.layers={tuple(self.config.layers)} names no module with a '
                       'kernel')
    outside = [p for p in layers if f'{p}/kernel' not in start]
    if outside:
      raise ValueError(f'method.layers: {outside} are not in method.shared={shared} (the '
                       'source model is the shared leaves)')
    extra = {**super().init_extra(variables, rng), 'source': unflatten(start)}
    if variables.get('batch_stats'):
      extra['source_stats'] = jax.tree.map(jnp.asarray, variables['batch_stats'])
    if self.config.attention:
      kernels = flatten(params)
      extra['attention'] = unflatten({p: jnp.full(kernels[f'{p}/kernel'].shape[-1:],
                                                  1 / kernels[f'{p}/kernel'].shape[-1])
                                      for p in layers})
    return extra

  # ------------------------------------------------------------------ the penalty

  def _maps(self, variables, images, layers, train=False, heads=(), mutable=()):
    """(outputs, updated collections, {layer: its output}) of one forward pass."""
    out, state = self.model.apply(
        variables, images, train=train, heads=heads, mutable=[*mutable, 'intermediates'],
        capture_intermediates=lambda mdl, name: name == '__call__' and '/'.join(mdl.path) in
        layers)
    found = {p[:-len('/__call__')]: v[0] for p, v in
             flatten(state.pop('intermediates')).items()}
    return out, state, {p: found[p] for p in layers}

  def forward(self, params, model_state, images, heads=()):
    """The training forward pass, plus the layers' maps under it and under the source model."""
    extra = model_state['extra']
    layers = self.layer_paths(params)
    out, updates, maps = self._maps({'params': params, 'batch_stats': model_state['batch_stats']},
                                    images, layers, self.mode, heads, ['batch_stats'])
    source = jax.lax.stop_gradient(unflatten({**flatten(params), **flatten(extra['source'])}))
    _, _, source_maps = self._maps({'params': source,
                                    'batch_stats': extra.get('source_stats', {})}, images, layers)
    return {**out, MAPS: maps, SOURCE_MAPS: source_maps}, updates.get('batch_stats', {})

  def loss_fn(self, params, model_state, batch, rng):
    out = super().loss_fn(params, model_state, batch, rng)
    outputs = dict(out.outputs)
    maps, source_maps = outputs.pop(MAPS), outputs.pop(SOURCE_MAPS)
    attention = None
    if self.config.attention:
      attention = flatten(model_state['extra']['attention'])
    omega = feature_map_distance(maps, source_maps, attention)
    _, rest = l2sp_terms(params, model_state['extra']['source'], tuple(self.config.shared))
    loss = out.loss + self.config.alpha * omega + self.config.beta / 2 * rest
    return out.replace(loss=loss, outputs=outputs,
                       metrics={**out.metrics, 'delta_feature_distance': omega})

  # ------------------------------------------------------------------ channel attention

  def channel_increases(self, variables, images, labels, layer):
    """(C,): the batch's mean cross-entropy with layer's kernel[..., c] zeroed minus without,
    for each output channel c, in inference mode."""
    def loss(params):
      logits = self.model.apply({**variables, 'params': params}, images, heads=('head',))['head']
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    flat = flatten(variables['params'])
    kernel = flat[f'{layer}/kernel']

    def zeroed(c):
      mask = (jnp.arange(kernel.shape[-1]) != c).astype(kernel.dtype)
      return loss(unflatten({**flat, f'{layer}/kernel': kernel * mask}))

    return jax.lax.map(zeroed, jnp.arange(kernel.shape[-1])) - loss(variables['params'])

  def host_update(self, state, host):
    """extra['attention'] from the training split under the starting model (before step 1)."""
    if not self.config.attention:
      return state, {}
    source, bs = host.splits['train'], host.batch_size
    variables = jax.device_get(state.variables)
    layers = self.layer_paths(variables['params'])
    if not hasattr(self, '_increases'):
      self._increases = jax.jit(self.channel_increases, static_argnums=3)
    sums = {p: 0.0 for p in layers}
    starts = range(0, min(len(source), self.config.attention_batches * bs), bs)
    for start in starts:
      items = [source[i] for i in range(start, min(start + bs, len(source)))]
      images = np.stack([x['image'] for x in items]).astype(np.float32) / 255.0
      labels = np.asarray([x['label'] for x in items], np.int32)
      for p in layers:
        sums[p] = sums[p] + np.asarray(self._increases(variables, images, labels, p))
    attention = {p: attention_from_increases(sums[p] / len(starts)) for p in layers}
    attention = jax.device_put(unflatten(attention), mesh_lib.replicated(host.mesh))
    return state.replace(extra={**state.extra, 'attention': attention}), {}
