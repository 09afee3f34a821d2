"""CDAN and CDAN+E: conditional adversarial domain adaptation (Long, Cao, Wang & Jordan,
2018, NeurIPS, "Conditional Adversarial Domain Adaptation").

DANN's game with a discriminator conditioned on the classifier's predictions: it sees
the multilinear map T(f, g) = f (x) g of the features f and the softmax predictions g
(multilinear conditioning), or its randomized approximation (1 / sqrt(d)) (R_f f) . (R_g g)
with fixed Gaussian R_f (F, d), R_g (K, d) when F * K is large. CDAN+E (`entropy`)
weighs each example's domain loss by w = 1 + exp(-H(g)) (entropy conditioning),
normalised to mean 1 over the batch as the Transfer-Learning-Library does, so
confident predictions count more.

Transcribes `tllib/alignment/cdan.py` (ConditionalDomainAdversarialLoss): g = softmax
of the logits without gradient, the gradient reversal after the map, the weighted
binary cross-entropy averaged over source and target. Deviations: the domain labels
follow DANN's here (source 0, target 1; TLlib's are flipped, the same game), the
discriminator is `domain_head` (an MLP that outputs a logit, without TLlib's BatchNorm
and sigmoid), the
reversal coefficient follows DANN's schedule (TLlib's warm start: tanh(i / 2000) in
iterations), and R_f, R_g are drawn once from a fixed key (the same in every run).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from tlu import checks
from tlu.adapt.grl import dann_lambda, gradient_reversal
from tlu.methods import METHODS, paired
from tlu.methods.dann import DANN, SOURCE, TARGET
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib

EPSILON = 1e-5  # TLlib's epsilon inside the entropy's log
RANDOM_MAP_KEY = 0


def random_matrices(features_dim, num_classes, randomized_dim):
  """CDAN's fixed random R_f (F, d) and R_g (K, d), standard normal, from a fixed key."""
  kf, kg = jax.random.split(jax.random.key(RANDOM_MAP_KEY))
  return (jax.random.normal(kf, (features_dim, randomized_dim), jnp.float32),
          jax.random.normal(kg, (num_classes, randomized_dim), jnp.float32))


def multilinear_map(features, probs, randomized_dim=0):
  """T(f, g): features (N, F), probs (N, K) -> (N, K * F) outer products g_k f_j (row-major
  in k, as TLlib's bmm(g^T, f)), or with randomized_dim d > 0 -> (N, d) randomized map."""
  f, g = features.astype(jnp.float32), probs.astype(jnp.float32)
  if not randomized_dim:
    return (g[:, :, None] * f[:, None, :]).reshape(f.shape[0], -1)
  r_f, r_g = random_matrices(f.shape[1], g.shape[1], randomized_dim)
  return (f @ r_f) * (g @ r_g) / jnp.sqrt(jnp.float32(randomized_dim))


def entropy(probs, epsilon=EPSILON):
  """(N, K) probabilities -> (N,) -sum_k p log(p + epsilon)."""
  return -jnp.sum(probs * jnp.log(probs + epsilon), axis=-1)


def conditional_domain_loss(domain_logits, probs, is_target, entropy_conditioning):
  """(Entropy-weighted) binary cross-entropy of the conditioned discriminator.

  domain_logits: (N, 1) or (N,) logits of "from the target"; probs: (N, K) predictions
  (no gradient is taken through them); is_target: (N,) 0/1. With entropy conditioning
  each example's BCE is weighted by w_i = N (1 + exp(-H_i)) / sum_j (1 + exp(-H_j)).
  Returns (mean weighted BCE (), discriminator accuracy ()).
  """
  logits = jnp.reshape(domain_logits, (-1,))
  bce = optax.sigmoid_binary_cross_entropy(logits, is_target)
  if entropy_conditioning:
    w = 1.0 + jnp.exp(-entropy(jax.lax.stop_gradient(probs)))
    bce = bce * (w / jnp.sum(w) * w.shape[0])
  acc = jnp.mean((logits > 0).astype(jnp.float32) == is_target)
  return jnp.mean(bce), acc


@dataclasses.dataclass(frozen=True)
class ConditionedInput:
  """The discriminator's input at model init: T(features, softmax(head)) (shapes only matter
  there; the loss applies `domain_head` itself to the reversed map)."""
  randomized_dim: int = 0

  def __call__(self, out):
    return multilinear_map(out['features'], jax.nn.softmax(out['head'], -1), self.randomized_dim)


@METHODS.register('cdan')
class CDAN(DANN):
  """Loss = CE(head(f_s), y_s) + domain_weight * mean_i w_i BCE(D(GRL_lambda(T(f_i, g_i))), d_i).

  g = softmax(head(f)) without gradient, w = 1 (CDAN) or the entropy weights (CDAN+E),
  lambda = dann_lambda(step / num_steps, gamma) as DANN.
  config: DANN's (domain_head widths ending in 1, domain_weight >= 0, gamma >= 0,
  batch_norm 'joint' | 'per_domain'), entropy: bool (CDAN+E), randomized_dim: 0 for the
  full map (K * F inputs to the discriminator) or d >= 1 for the randomized one (1024 in
  the paper and TLlib). batch: {'image', 'label', 'target_image'} as DANN's.
  """
  ranges = {'domain_head': checks.WIDTHS, 'domain_weight': checks.NON_NEGATIVE,
            'entropy': checks.FLAG, 'gamma': checks.NON_NEGATIVE,
            'randomized_dim': checks.NON_NEGATIVE_INT}

  @classmethod
  def example_config(cls):
    return {**super().example_config(), 'entropy': True, 'randomized_dim': 0}

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes),
            'domain_head': heads_lib.Head.of(
                heads_lib.MLP, input=ConditionedInput(int(config.randomized_dim)),
                dims=tuple(int(d) for d in config.domain_head), batch_norm=False)}

  def loss_fn(self, params, model_state, batch, rng):
    out_s, out_t, batch_stats = paired.forward(self, params, model_state, batch, rng)
    class_loss, source_acc = paired.source_terms(out_s['head'], batch['label'])
    features = jnp.concatenate([out_s['features'], out_t['features']])
    probs = jax.lax.stop_gradient(jax.nn.softmax(
        jnp.concatenate([out_s['head'], out_t['head']]).astype(jnp.float32), -1))
    lam = dann_lambda(model_state['step'].astype(jnp.float32) / self.facts.num_steps,
                      self.config.gamma)
    mapped = multilinear_map(features, probs, self.config.randomized_dim)
    domain_logits = self.model.apply({'params': params}, 'domain_head',
                                     gradient_reversal(mapped, lam), method='apply_head')
    n_s, n_t = out_s['features'].shape[0], out_t['features'].shape[0]
    is_target = jnp.concatenate([jnp.full((n_s,), SOURCE), jnp.full((n_t,), TARGET)])
    d_loss, d_acc = conditional_domain_loss(domain_logits, probs, is_target,
                                            self.config.entropy)
    loss = class_loss + self.config.domain_weight * d_loss
    metrics = {'source_accuracy': source_acc, 'domain_accuracy': d_acc, 'lambda': lam,
               'class_loss': class_loss, 'domain_loss': d_loss,
               'target_entropy': jnp.mean(entropy(probs[n_s:]))}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics,
                      outputs=paired.outputs(out_s, out_t))
