"""Domain-adversarial training (DANN; Ganin & Lempitsky, 2015, "Unsupervised Domain
Adaptation by Backpropagation").

One loss trains three parts (eq. 9-10 of the paper, with the GRL of section 3.2):
the `head` classifies labelled source images, the `domain_head` tells source from
target features, and the `backbone` is trained to help the classifier and, through
the gradient reversal layer, to fool the domain classifier.

BatchNorm with two domains (`batch_norm`):
  'joint'       one forward pass on the concatenated (B_s + B_t) batch, as the
                Transfer-Learning-Library's DANN does: statistics of the mixture.
  'per_domain'  one pass per domain, each normalised by its own batch statistics
                (DSBN's statistics, Chang et al. 2019, scale and shift shared); the
                running averages follow the target batches, so the model is
                evaluated with target statistics (AdaBN; Li et al. 2017).
"""

import jax.numpy as jnp
import optax

from tlu import checks
from tlu.adapt.grl import dann_lambda, gradient_reversal
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib

SOURCE, TARGET = 0.0, 1.0  # domain labels of the binary domain classifier
BATCH_NORM = ('joint', 'per_domain')


def domain_loss(domain_logits, is_target):
  """Binary cross-entropy of the domain classifier and its accuracy.

  domain_logits: (N, 1) or (N,) logits of "from the target"; is_target: (N,) 0/1 floats.
  Returns (mean BCE (), accuracy ()).
  """
  logits = jnp.reshape(domain_logits, (-1,))
  bce = optax.sigmoid_binary_cross_entropy(logits, is_target).mean()
  acc = jnp.mean((logits > 0).astype(jnp.float32) == is_target)
  return bce, acc


@METHODS.register('dann')
class DANN(Method):
  """Loss = CE(head(f(x_s)), y_s) + domain_weight * BCE(domain_head(GRL_lambda(f(x))), d).

  f(x): backbone features of the source and target images, d = 0 source / 1 target,
  lambda = dann_lambda(step / num_steps, gamma) (the paper's schedule), so the backbone
  receives -lambda times the domain classifier's gradient.
  config: domain_head (widths ending in 1), domain_weight >= 0, gamma >= 0, batch_norm.
  batch: {'image': (B, H, W, C) uint8 source, 'label': (B,), 'target_image': (B, H, W, C)}.
  """
  ranges = {'domain_head': checks.WIDTHS, 'domain_weight': checks.NON_NEGATIVE,
            'gamma': checks.NON_NEGATIVE}
  inputs = 'paired'

  @classmethod
  def example_config(cls):
    return {'domain_head': (8, 1), 'domain_weight': 1.0, 'gamma': 10.0, 'batch_norm': 'per_domain'}

  @classmethod
  def check(cls, config):
    if config.batch_norm not in BATCH_NORM:   # the values' ranges: `ranges`
      raise ValueError(f'method.batch_norm={config.batch_norm!r}; use one of {BATCH_NORM}')
    if config.domain_head[-1] != 1:
      raise ValueError(f'method.domain_head={tuple(config.domain_head)}: widths ending in 1 '
                       '(one logit: source vs target)')

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes),
            'domain_head': heads_lib.mlp(config.domain_head)}

  def loss_fn(self, params, model_state, batch, rng):
    source = batch['image'].astype(jnp.float32) / 255.0
    target = batch['target_image'].astype(jnp.float32) / 255.0
    n_s, n_t = source.shape[0], target.shape[0]
    images = jnp.concatenate([source, target])
    if self.augment is not None:
      images = self.augment(rng, images)
    if self.config.batch_norm == 'joint':
      out, batch_stats = self.forward(params, model_state, images, ('head',))
      features, logits = out['features'], out['head'][:n_s]
    else:
      out_s, _ = self.forward(params, model_state, images[:n_s], ('head',))
      out_t, batch_stats = self.forward(params, model_state, images[n_s:])
      features = jnp.concatenate([out_s['features'], out_t['features']])
      logits = out_s['head']
    class_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()

    lam = dann_lambda(model_state['step'].astype(jnp.float32) / self.facts.num_steps,
                      self.config.gamma)
    domain_logits = self.model.apply({'params': params}, 'domain_head',
                                     gradient_reversal(features, lam), method='apply_head')
    is_target = jnp.concatenate([jnp.full((n_s,), SOURCE), jnp.full((n_t,), TARGET)])
    d_loss, d_acc = domain_loss(domain_logits, is_target)

    loss = class_loss + self.config.domain_weight * d_loss
    metrics = {'source_accuracy': jnp.mean(jnp.argmax(logits, -1) == batch['label']),
               'domain_accuracy': d_acc, 'lambda': lam, 'class_loss': class_loss,
               'domain_loss': d_loss}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs={'features': features, 'head': logits})
