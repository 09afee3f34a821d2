"""SCAN's self-labelling step (Van Gansbeke et al. 2020, Section 3.3; reference code
wvangansbeke/Unsupervised-Classification, `selflabel.py`, `ConfidenceBasedCE`).

Continues from a `scan` run (`--config.source`; the clustering head is `head`). Each
step predicts the un-augmented images (the reference's 'standard' transform, no
gradient), takes argmax predictions with confidence > threshold (0.99) as pseudo-labels,
and trains the network on the strongly augmented images (the method's augmentation)
with the class-balanced cross-entropy of `tlu.unsupervised.scan.confidence_ce`:
  L = sum_{i in M} w_{y_i} CE(z_i^strong, y_i) / sum_{i in M} w_{y_i},
  w_c = |M| / #{i in M: y_i = c}.
"""

import jax

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.unsupervised.scan import confidence_ce


@METHODS.register('scan_selflabel')
class SCANSelfLabel(Method):
  """config: threshold in [0, 1) (0.99 in SCAN), class_balancing (True in SCAN).
  batch: {'image'} of the train split."""
  inputs = 'images'

  @classmethod
  def example_config(cls):
    return {'threshold': 0.4, 'class_balancing': True}

  ranges = {'class_balancing': checks.FLAG, 'threshold': checks.BELOW_ONE}

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def loss_fn(self, params, model_state, batch, rng):
    """Weak (plain) forward for the pseudo-labels, then the strong forward that is trained."""
    plain = batch['image'].astype('float32') / 255.0
    weak, stats = self.forward(params, model_state, plain, ('head',))
    strong, stats = self.forward(params, {**model_state, 'batch_stats': stats},
                                 self.images(batch, rng), ('head',))
    loss, confident, _ = confidence_ce(jax.lax.stop_gradient(weak['head']), strong['head'],
                                       self.config.threshold, self.config.class_balancing)
    return LossOutput(loss=loss, batch_stats=stats, metrics={'confident_fraction': confident},
                      outputs=strong)

