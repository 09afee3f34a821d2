"""Domain-adversarial training (DANN; Ganin & Lempitsky, 2015, "Unsupervised Domain
Adaptation by Backpropagation") as an objective for `tlu.train.step.make_train_step`.

One loss trains three parts (eq. 9-10 of the paper, with the GRL of section 3.2):
the `head` classifies labelled source images, the `domain_head` tells source from
target features, and the `backbone` is trained to help the classifier and, through
the gradient reversal layer, to fool the domain classifier, so that its features
carry the label but not the domain.

BatchNorm with two domains, two choices (`batch_norm`):
  'joint'       source and target go through the backbone in *one* forward pass on
                the concatenated (B_s + B_t) batch, as the reference implementations
                do (e.g. the Transfer-Learning-Library's DANN): batch statistics and
                running averages are those of the mixture of both domains.
  'per_domain'  one forward pass per domain, each normalised by its own batch
                statistics (the statistics half of DSBN, Chang et al. 2019: the
                scale and shift stay shared), and the
                running averages follow the target batches only, so the model is
                evaluated on the target with target statistics (AdaBN; Li et al.
                2017). The domain classifier then cannot win on first-order
                statistics that normalisation removes, and the GRL works on what is
                left.
"""

import jax.numpy as jnp
import optax

from tlu.adapt.grl import dann_lambda, gradient_reversal
from tlu.models.model import Model

SOURCE, TARGET = 0.0, 1.0  # domain labels of the binary domain classifier


def domain_loss(domain_logits, is_target):
  """Binary cross-entropy of the domain classifier and its accuracy.

  Args:
    domain_logits: (N, 1) or (N,) logits of "this example is from the target".
    is_target: (N,) float 0 (source) / 1 (target).

  Returns:
    (mean BCE (), accuracy ()).
  """
  logits = jnp.reshape(domain_logits, (-1,))
  bce = optax.sigmoid_binary_cross_entropy(logits, is_target).mean()
  acc = jnp.mean((logits > 0).astype(jnp.float32) == is_target)
  return bce, acc


BATCH_NORM = ('joint', 'per_domain')


def dann(model, total_steps, domain_weight=1.0, gamma=10.0, batch_norm='joint', augment=None):
  """The DANN objective: source cross-entropy + domain BCE through a GRL.

  Loss = CE(head(f(x_s)), y_s) + domain_weight * BCE(domain_head(GRL_lambda(f(x))), d),
  with f(x) the backbone features of the concatenated source and target images,
  d = 0 for source and 1 for target, and lambda = `dann_lambda(step / total_steps,
  gamma)` (the paper's schedule), so the backbone receives -lambda times the
  domain classifier's gradient while the domain head learns normally.

  Args:
    model: a `tlu.models.Model` with a `head` and a `domain_head` whose last
      width is 1 (one logit).
    total_steps: number of training steps (progress = step / total_steps).
    domain_weight: weight of the domain loss (1 in the paper).
    gamma: steepness of the lambda schedule (10 in the paper).
    batch_norm: 'joint' or 'per_domain' (module docstring).
    augment: optional on-device `augment(key, images)`, applied to both domains.

  Returns:
    loss_fn(params, model_state, batch, rng) -> (loss, aux) with batch
    {'image': (B_s, H, W, C) uint8, 'label': (B_s,) int, 'target_image':
    (B_t, H, W, C) uint8}; aux['metrics'] has source accuracy, domain accuracy,
    lambda, class and domain losses.
  """
  if batch_norm not in BATCH_NORM:
    raise ValueError(f'unknown batch_norm {batch_norm!r}; use one of {BATCH_NORM}')

  def forward(params, batch_stats, images):
    return model.apply({'params': params, 'batch_stats': batch_stats}, images, train=True,
                       mutable=['batch_stats'])

  def loss_fn(params, model_state, batch, rng):
    source = batch['image'].astype(jnp.float32) / 255.0
    target = batch['target_image'].astype(jnp.float32) / 255.0
    n_s, n_t = source.shape[0], target.shape[0]
    images = jnp.concatenate([source, target])
    if augment is not None:
      images = augment(rng, images)
    if batch_norm == 'joint':
      out, updates = forward(params, model_state['batch_stats'], images)
      features = out['features']
      logits = out['logits'][:n_s]
    else:
      out_s, _ = forward(params, model_state['batch_stats'], images[:n_s])
      out_t, updates = forward(params, model_state['batch_stats'], images[n_s:])
      features = jnp.concatenate([out_s['features'], out_t['features']])
      logits = out_s['logits']
    class_loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()

    lam = dann_lambda(model_state['step'].astype(jnp.float32) / total_steps, gamma)
    reversed_features = gradient_reversal(features, lam)
    domain_logits = model.apply({'params': params}, reversed_features, method=Model.domain_logits)
    is_target = jnp.concatenate([jnp.full((n_s,), SOURCE), jnp.full((n_t,), TARGET)])
    d_loss, d_acc = domain_loss(domain_logits, is_target)

    loss = class_loss + domain_weight * d_loss
    metrics = {'source_accuracy': jnp.mean(jnp.argmax(logits, -1) == batch['label']),
               'domain_accuracy': d_acc, 'lambda': lam, 'class_loss': class_loss,
               'domain_loss': d_loss}
    return loss, {'batch_stats': updates.get('batch_stats', {}), 'metrics': metrics}

  return loss_fn
