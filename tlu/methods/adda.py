"""ADDA: adversarial discriminative domain adaptation (Tzeng, Hoffman, Saenko & Darrell, 2017,
CVPR, "Adversarial Discriminative Domain Adaptation").

The paper's algorithm (section 4, eq. 7-9): a source encoder M_s and classifier C are
trained on the labelled source, min CE(C(M_s(x_s)), y_s) (the sweep's source run); the
target encoder M_t starts as a copy of M_s; M_s stays fixed; a discriminator D learns to
tell source features M_s(x_s) (source label 1) from target features M_t(x_t) (label 0),
  L_advD = -E_s log D(M_s(x_s)) - E_t log(1 - D(M_t(x_t))),
and M_t is trained against it with the inverted-label GAN loss
  L_advM = -E_t log D(M_t(x_t));
the model evaluated on the target is C(M_t(x)): the source classifier, reused unchanged.

Here the encoders are the backbone: M_t is `params['backbone']`, trained from the source
run's weights (`from_source`: the sweep starts the cell from them, as SHOT's and AaD's, but
with paired batches, tlu/adapt/cells.py); M_s is the backbone as it was at the first step,
kept frozen in the method state (`extra['source']`: its parameters and BatchNorm statistics,
checkpointed, as L2-SP's source weights) and run in eval mode (TLlib's `freeze_bn`); C is
`head`, in no update phase, so it never moves; D is `domain_head`, an MLP with BatchNorm
(TLlib's DomainDiscriminator: Dense -> BN -> ReLU -> Dense -> BN -> ReLU -> Dense, on the
concatenated source + target features, one logit; width 1024). Two objectives (`objective`):
  'grl'       the Transfer-Learning-Library's (examples/.../adda.py, the default): one update
              phase over M_t and D of one backward pass, loss = 1/2 [BCE(D(R(f_s)), 1) +
              BCE(D(R(f_t)), 0)] (tllib/alignment/dann.py's DomainAdversarialLoss), R the
              gradient reversal, so D descends L_advD / 2 and M_t ascends it times lambda
              (the minimax form, not the inverted labels); lambda = grl_max * (2 / (1 +
              exp(-gamma p)) - 1), p = step / num_steps. TLlib's WarmStartGradientReverseLayer
              has hi = 2 (grl_max) and alpha = 1 over 1000 iterations i: p = i / 1000, so
              gamma = num_steps / 1000 gives TLlib's schedule exactly.
  'inverted'  the paper's: two update phases a step, 'discriminator' (D only) descends
              L_advD / 2 as above without reversal, then 'target' (M_t only), at the updated
              D, descends L_advM (tllib/alignment/adda.py's DomainAdversarialLoss(d_t,
              'source')), D run on the concatenated features as in the first phase.
Deviations from TLlib: its encoder is backbone -> bottleneck (Dense 256, BN, ReLU) with the
backbone at 0.1 x the learning rate, here the backbone alone at the run's rate; D outputs a
logit (BCE on logits, not sigmoid then BCE clamped at log >= -100); an augmentation draws
once per phase on the concatenated images. TLlib's example trains the source model itself
when no checkpoint is given (3 epochs); here the sweep's source run is the source model.
(The note atop TLlib's example says it neither keeps separate networks nor fixes the head;
its code does both: a deep copy as the frozen source, `get_parameters(optimize_head=False)`.)
"""

import jax
import jax.numpy as jnp
import optax

from tlu import checks
from tlu.adapt.grl import dann_lambda, gradient_reversal
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.methods.phases import Phase
from tlu.models import heads as heads_lib

SOURCE, TARGET = 1.0, 0.0   # TLlib's domain labels
OBJECTIVES = ('grl', 'inverted')


def discriminator_loss(d_s, d_t):
  """L_advD / 2 on D's logits (N_s, 1), (N_t, 1): 1/2 [BCE(d_s, 1) + BCE(d_t, 0)] (means
  over each domain) and D's accuracy 1/2 [acc_s + acc_t] (logit >= 0: source, TLlib's
  sigmoid >= 0.5) -> ((), ())."""
  d_s, d_t = jnp.reshape(d_s, (-1,)), jnp.reshape(d_t, (-1,))
  loss = 0.5 * (optax.sigmoid_binary_cross_entropy(d_s, SOURCE).mean() +
                optax.sigmoid_binary_cross_entropy(d_t, TARGET).mean())
  accuracy = 0.5 * (jnp.mean(d_s >= 0) + jnp.mean(d_t < 0))
  return loss, accuracy


def target_encoder_loss(d_t):
  """L_advM, the inverted-label loss: BCE(d_t, 1) = -mean log sigmoid(d_t) -> ()."""
  return optax.sigmoid_binary_cross_entropy(jnp.reshape(d_t, (-1,)), SOURCE).mean()


def grl_lambda(step, num_steps, grl_max, gamma):
  """The reversal's coefficient: grl_max * (2 / (1 + exp(-gamma step / num_steps)) - 1)."""
  return grl_max * dann_lambda(jnp.asarray(step, jnp.float32) / num_steps, gamma)


@METHODS.register('adda')
class ADDA(Method):
  """See the module docstring; the logged 'loss' is the first phase's.

  config: domain_head (D's widths ending in 1; TLlib's (1024, 1024, 1)), objective 'grl'
  (TLlib, one phase 'adapt') | 'inverted' (the paper, phases 'discriminator' and 'target'),
  grl_max >= 0 (2 in TLlib), gamma >= 0 (the reversal's schedule; 'grl' only).
  Method state: extra['source'] = {'params', 'batch_stats'} of the backbone at the first step.
  batch: {'image': (B, H, W, C) uint8 source, 'label': (B,) (unread), 'target_image'}.
  """
  ranges = {'domain_head': checks.WIDTHS, 'grl_max': checks.NON_NEGATIVE,
            'gamma': checks.NON_NEGATIVE}
  inputs = 'paired'
  from_source = True

  @classmethod
  def example_config(cls):
    return {'domain_head': (8, 8, 1), 'objective': 'grl', 'grl_max': 2.0, 'gamma': 10.0}

  @classmethod
  def check(cls, config):
    if config.objective not in OBJECTIVES:
      raise ValueError(f'method.objective={config.objective!r}; use one of {OBJECTIVES}')
    head = tuple(config.domain_head)   # the values' ranges: `ranges`
    if head[-1] != 1:
      raise ValueError(f'method.domain_head={head}: widths ending in 1 (one logit: source '
                       'vs target)')

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes),
            'domain_head': heads_lib.mlp(config.domain_head, batch_norm=True)}

  @classmethod
  def update_phases(cls, config):
    if config.objective == 'grl':
      return (Phase('adapt', ('backbone', 'domain_head'), 'grl_loss'),)
    return (Phase('discriminator', ('domain_head',), 'discriminator_loss'),
            Phase('target', ('backbone',), 'target_loss'))

  def init_extra(self, variables, rng):
    del rng
    stats = variables.get('batch_stats', {}).get('backbone', {})
    return {'source': {'params': jax.tree.map(jnp.array, variables['params']['backbone']),
                       'batch_stats': jax.tree.map(jnp.array, stats)}}

  def _features(self, params, model_state, batch, rng):
    """(source features of the frozen M_s in eval mode, target features of M_t in training
    mode, batch_stats with M_t's updated statistics)."""
    source = batch['image'].astype(jnp.float32) / 255.0
    target = batch['target_image'].astype(jnp.float32) / 255.0
    n_s = source.shape[0]
    images = jnp.concatenate([source, target])
    if self.augment is not None:
      images = self.augment(rng, images)
    frozen = jax.lax.stop_gradient(model_state['extra']['source'])
    variables = {'params': {'backbone': frozen['params']}}
    if frozen['batch_stats']:
      variables['batch_stats'] = {'backbone': frozen['batch_stats']}
    f_s = self.model.apply(variables, images[:n_s], train=False)['features']
    out_t, batch_stats = self.forward(params, model_state, images[n_s:])
    return f_s, out_t['features'], batch_stats

  def _discriminate(self, params, batch_stats, f_s, f_t, lam=None):
    """D on the concatenated (reversed, with `lam`) features in training mode:
    (d_s, d_t, batch_stats with D's updated statistics)."""
    features = jnp.concatenate([f_s, f_t])
    if lam is not None:
      features = gradient_reversal(features, lam)
    d, updates = self.model.apply({'params': params, 'batch_stats': batch_stats},
                                  'domain_head', features, self.mode, method='apply_head',
                                  mutable=['batch_stats'])
    n_s = f_s.shape[0]
    return d[:n_s], d[n_s:], {**batch_stats, **updates['batch_stats']}

  def _output(self, loss, d_s, d_t, f_s, f_t, batch_stats, **metrics):
    d_loss, d_acc = discriminator_loss(d_s, d_t)
    metrics = {'domain_loss': d_loss, 'domain_accuracy': d_acc, **metrics}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs={'features': jnp.concatenate([f_s, f_t])})

  def grl_loss(self, params, model_state, batch, rng):
    """'grl': TLlib's single pass, D and M_t through the gradient reversal."""
    f_s, f_t, batch_stats = self._features(params, model_state, batch, rng)
    lam = grl_lambda(model_state['step'], self.facts.num_steps, self.config.grl_max,
                     self.config.gamma)
    d_s, d_t, batch_stats = self._discriminate(params, batch_stats, f_s, f_t, lam)
    loss, _ = discriminator_loss(d_s, d_t)
    return self._output(loss, d_s, d_t, f_s, f_t, batch_stats, **{'lambda': lam})

  def discriminator_loss(self, params, model_state, batch, rng):
    """'inverted', phase 'discriminator': L_advD / 2 (a gradient for D only)."""
    f_s, f_t, batch_stats = self._features(params, model_state, batch, rng)
    d_s, d_t, batch_stats = self._discriminate(params, batch_stats, f_s, f_t)
    loss, _ = discriminator_loss(d_s, d_t)
    return self._output(loss, d_s, d_t, f_s, f_t, batch_stats)

  def target_loss(self, params, model_state, batch, rng):
    """'inverted', phase 'target': L_advM (a gradient for M_t only)."""
    f_s, f_t, batch_stats = self._features(params, model_state, batch, rng)
    d_s, d_t, batch_stats = self._discriminate(params, batch_stats, f_s, f_t)
    return self._output(target_encoder_loss(d_t), d_s, d_t, f_s, f_t, batch_stats)

  def loss_fn(self, params, model_state, batch, rng):
    """The first phase's loss (what a caller without phases would differentiate)."""
    return getattr(self, self.phases[0].loss)(params, model_state, batch, rng)
