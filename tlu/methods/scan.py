"""SCAN's clustering step (Van Gansbeke et al. 2020, "SCAN: Learning to classify images
without labels", Section 3.2; reference code wvangansbeke/Unsupervised-Classification).

Starts from a self-supervised source (`--config.source`, e.g. a SimCLR run): before the
first step the host hook mines the K nearest neighbours (cosine, on device,
`tlu.unsupervised.neighbours.knn`) of every training image in the source's feature
space, the image itself included as in the reference (K + 1 columns), into
`extra['neighbours']`; their label agreement is logged as a diagnostic only. Each step
reads anchors and one uniformly drawn neighbour of each (`tlu.data.neighbour_batches`),
both through the method's augmentation (SCAN uses strong augmentation here), and trains
backbone and clustering head `head` (num_classes outputs) on
  L = -1/B sum_i log <Phi(x_i), Phi(k_i)> - entropy_weight * H(mean_i Phi(x_i))
(`tlu.unsupervised.scan.scan_loss`, eq. 2). `scan_selflabel` continues from such a run.
One head (the reference trains several and keeps the lowest-loss one).
"""

import jax
import jax.numpy as jnp
import numpy as np

from tlu import checks
from tlu.data.neighbour_batches import NeighbourBatches
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.train import mesh as mesh_lib
from tlu.unsupervised import neighbours as neighbours_lib
from tlu.unsupervised.scan import scan_loss


@METHODS.register('scan')
class SCAN(Method):
  """config: num_neighbors K >= 1 (20 in SCAN), entropy_weight >= 0 (5.0 in SCAN's configs).
  batch: {'image', 'index', 'neighbour_image', 'neighbour_index'} of the train split."""
  ranges = {'entropy_weight': checks.NON_NEGATIVE, 'num_neighbors': checks.POSITIVE_INT}
  inputs = 'indexed'

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._batches = None

  @classmethod
  def example_config(cls):
    return {'num_neighbors': 3, 'entropy_weight': 5.0}

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def init_extra(self, variables, rng):
    del variables, rng
    width = self.config.num_neighbors + 1
    return {'neighbours': jnp.zeros((self.facts.num_examples, width), jnp.int32)}

  def batches(self, splits, *, seed, process_index=0, process_count=1):
    self._batches = NeighbourBatches(splits.train, self.facts.batch_size, seed=seed,
                                     process_index=process_index, process_count=process_count)
    return self._batches

  def host_update(self, state, host):
    """Mines the neighbours of every training image under the current (source) model."""
    features, labels = host.features(state, 'train')
    k = min(self.config.num_neighbors + 1, features.shape[0])
    idx, _ = neighbours_lib.knn(features, features, k, metric='cosine')
    idx = np.asarray(idx, np.int32)
    if k < self.config.num_neighbors + 1:   # fewer images than neighbours: repeat the last
      idx = np.concatenate([idx, np.repeat(idx[:, -1:], self.config.num_neighbors + 1 - k, 1)],
                           axis=1)
    if self._batches is not None:
      self._batches.set_table(idx)
    agreement = float(neighbours_lib.neighbour_agreement(idx, np.asarray(labels)))
    table = jax.device_put(idx, mesh_lib.replicated(host.mesh))
    return (state.replace(extra={**state.extra, 'neighbours': table}),
            {'train': {'neighbour_agreement': agreement}})

  def loss_fn(self, params, model_state, batch, rng):
    """The clustering step's `LossOutput` (anchors, then neighbours, through BatchNorm)."""
    k_anchor, k_neighbour = jax.random.split(rng)
    anchors = self.images(batch, k_anchor)
    neighbours = self.images(batch, k_neighbour, key='neighbour_image')
    out, stats = self.forward(params, model_state, anchors, ('head',))
    out_n, stats = self.forward(params, {**model_state, 'batch_stats': stats}, neighbours,
                                ('head',))
    loss, consistency, entropy = scan_loss(out['head'], out_n['head'],
                                           self.config.entropy_weight)
    metrics = {'consistency': consistency, 'entropy': entropy}
    return LossOutput(loss=loss, batch_stats=stats, metrics=metrics, outputs=out)

