"""Numpy transcriptions of the reference code of the adaptation methods, for tests/test_da_*.py.

Each function follows the PyTorch source line by line (file named in its docstring):
the Transfer-Learning-Library (github.com/thuml/Transfer-Learning-Library, `tllib/`)
and AaD's `tar_adaptation.py` (github.com/Albert0147/AaD_SFDA). torch ops are written
with their numpy meaning (F.binary_cross_entropy clamps its logs at -100, F.kl_div
uses xlogy, torch.topk is a descending sort). Plus `make_method` / `paired_outputs`:
a small method and its training-mode forward pass, written without `tlu.methods.paired`.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tlu.methods.facts import RunFacts
from tlu.models import build_model
from method_block import check_block


# ----------------------------------------------------------------------------- tllib/modules


def softmax(x, axis=1):
  e = np.exp(x - x.max(axis, keepdims=True))
  return e / e.sum(axis, keepdims=True)


def entropy(predictions):
  """tllib/modules/entropy.py: entropy(predictions, reduction='none')."""
  epsilon = 1e-5
  h = -predictions * np.log(predictions + epsilon)
  return h.sum(axis=1)


def binary_cross_entropy(inp, target, weight=None):
  """F.binary_cross_entropy(input, target, weight, reduction='mean'); logs clamped at -100."""
  loss = -(target * np.maximum(np.log(inp), -100) +
           (1 - target) * np.maximum(np.log(1 - inp), -100))
  if weight is not None:
    loss = loss * weight
  return loss.mean()


def cross_entropy(logits, labels, reduction='mean'):
  log_p = np.log(softmax(logits))
  loss = -log_p[np.arange(len(labels)), labels]
  return loss.mean() if reduction == 'mean' else loss


def gaussian_kernel(x, alpha=1.0, sigma=None):
  """tllib/modules/kernels.py GaussianKernel(sigma, track_running_stats=sigma is None, alpha)."""
  l2_distance_square = ((x[None, :, :] - x[:, None, :]) ** 2).sum(2)
  if sigma is None:
    sigma_square = alpha * np.mean(l2_distance_square)
  else:
    sigma_square = sigma * sigma
  return np.exp(-l2_distance_square / (2 * sigma_square))


# ----------------------------------------------------------------------------- tllib/alignment


def multilinear_map(f, g):
  """tllib/alignment/cdan.py MultiLinearMap: bmm(g.unsqueeze(2), f.unsqueeze(1)).view(N, -1)."""
  return np.matmul(g[:, :, None], f[:, None, :]).reshape(f.shape[0], -1)


def randomized_multilinear_map(f, g, rf, rg):
  """tllib/alignment/cdan.py RandomizedMultiLinearMap.forward with its Rf, Rg."""
  return (f @ rf) * (g @ rg) / np.sqrt(float(rf.shape[1]))


def cdan_loss(d, g_s, g_t, entropy_conditioning):
  """ConditionalDomainAdversarialLoss.forward after the discriminator (sigmoid=True).

  d: (2B, 1) discriminator outputs in (0, 1), "from the source" (label 1); g_s, g_t logits.
  """
  g = softmax(np.concatenate([g_s, g_t]))
  weight = 1.0 + np.exp(-entropy(g))
  batch_size = g.shape[0]
  weight = weight / np.sum(weight) * batch_size
  d_label = np.concatenate([np.ones((g_s.shape[0], 1)), np.zeros((g_t.shape[0], 1))])
  if entropy_conditioning:
    return binary_cross_entropy(d, d_label, weight.reshape(d.shape))
  return binary_cross_entropy(d, d_label)


def update_index_matrix(batch_size, linear):
  """tllib/alignment/dan.py _update_index_matrix (fresh matrix)."""
  index_matrix = np.zeros((2 * batch_size, 2 * batch_size))
  if linear:
    for i in range(batch_size):
      s1, s2 = i, (i + 1) % batch_size
      t1, t2 = s1 + batch_size, s2 + batch_size
      index_matrix[s1, s2] = 1. / float(batch_size)
      index_matrix[t1, t2] = 1. / float(batch_size)
      index_matrix[s1, t2] = -1. / float(batch_size)
      index_matrix[s2, t1] = -1. / float(batch_size)
  else:
    for i in range(batch_size):
      for j in range(batch_size):
        if i != j:
          index_matrix[i][j] = 1. / float(batch_size * (batch_size - 1))
          index_matrix[i + batch_size][j + batch_size] = 1. / float(batch_size * (batch_size - 1))
    for i in range(batch_size):
      for j in range(batch_size):
        index_matrix[i][j + batch_size] = -1. / float(batch_size * batch_size)
        index_matrix[i + batch_size][j] = -1. / float(batch_size * batch_size)
  return index_matrix


def mk_mmd(z_s, z_t, alphas, linear):
  """tllib/alignment/dan.py MultipleKernelMaximumMeanDiscrepancy.forward."""
  features = np.concatenate([z_s, z_t], axis=0)
  batch_size = int(z_s.shape[0])
  index_matrix = update_index_matrix(batch_size, linear)
  kernel_matrix = sum(gaussian_kernel(features, alpha=a) for a in alphas)
  return (kernel_matrix * index_matrix).sum() + 2. / float(batch_size - 1)


def jmmd(z_s, z_t, kernels, linear):
  """tllib/alignment/jan.py JointMultipleKernelMaximumMeanDiscrepancy.forward (no thetas).

  kernels: per layer a list of dicts of GaussianKernel arguments.
  """
  batch_size = int(z_s[0].shape[0])
  index_matrix = update_index_matrix(batch_size, linear)
  kernel_matrix = np.ones_like(index_matrix)
  for layer_z_s, layer_z_t, layer_kernels in zip(z_s, z_t, kernels):
    layer_features = np.concatenate([layer_z_s, layer_z_t], axis=0)
    kernel_matrix *= sum(gaussian_kernel(layer_features, **k) for k in layer_kernels)
  return (kernel_matrix * index_matrix).sum() + 2. / float(batch_size - 1)


def shift_log(x, offset=1e-6):
  """tllib/alignment/mdd.py shift_log."""
  return np.log(np.minimum(x + offset, 1.))


def mdd(y_s, y_s_adv, y_t, y_t_adv, margin):
  """tllib/alignment/mdd.py ClassificationMarginDisparityDiscrepancy(margin).forward."""
  source_loss = -margin * cross_entropy(y_s_adv, y_s.argmax(1), reduction='none')
  prediction = y_t.argmax(1)
  target_loss = shift_log(1. - softmax(y_t_adv))[np.arange(len(prediction)), prediction]
  return (source_loss + target_loss).mean()


def bsp(f_s, f_t):
  """tllib/alignment/bsp.py BatchSpectralPenalizationLoss.forward."""
  s_s = np.linalg.svd(f_s, compute_uv=False)
  s_t = np.linalg.svd(f_t, compute_uv=False)
  return s_s[0] ** 2 + s_t[0] ** 2


def classifier_discrepancy(predictions1, predictions2):
  """tllib/alignment/mcd.py classifier_discrepancy."""
  return np.mean(np.abs(predictions1 - predictions2))


def mcd_entropy(predictions):
  """tllib/alignment/mcd.py entropy (the class-balance one)."""
  return -np.mean(np.log(np.mean(predictions, 0) + 1e-6))


def mcd_losses(y1_s, y2_s, labels_s, y1_t, y2_t, trade_off, trade_off_entropy):
  """examples/domain_adaptation/image_classification/mcd.py train(): the losses of steps
  A, B and C (each on its own forward pass: pass that pass's logits)."""
  y1_t, y2_t = softmax(y1_t), softmax(y2_t)
  loss_a = (cross_entropy(y1_s, labels_s) + cross_entropy(y2_s, labels_s) +
            (mcd_entropy(y1_t) + mcd_entropy(y2_t)) * trade_off_entropy)
  loss_b = loss_a - classifier_discrepancy(y1_t, y2_t) * trade_off
  loss_c = classifier_discrepancy(y1_t, y2_t) * trade_off
  return loss_a, loss_b, loss_c


# ----------------------------------------------------------------------------- adda


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


def warm_start_coeff(iter_num, alpha=1.0, lo=0.0, hi=1.0, max_iters=1000):
  """tllib/modules/grl.py WarmStartGradientReverseLayer.forward: the coefficient at iter_num."""
  return float(2.0 * (hi - lo) / (1.0 + np.exp(-alpha * iter_num / max_iters))
               - (hi - lo) + lo)


def domain_discriminator(f, hidden, last, eps=1e-5):
  """tllib/modules/domain_discriminator.py DomainDiscriminator(batch_norm=True, sigmoid=True)
  in training mode: per hidden layer Linear -> BatchNorm1d (batch mean, biased variance)
  -> ReLU, then Linear -> Sigmoid. hidden: [(W (in, out), b, gamma, beta)]; last: (W, b).
  Returns the (N, 1) probabilities of "source"."""
  x = f
  for w, b, gamma, beta in hidden:
    x = x @ w + b
    x = (x - x.mean(0)) / np.sqrt(x.var(0) + eps) * gamma + beta
    x = np.maximum(x, 0)
  w, b = last
  return sigmoid(x @ w + b)


def binary_accuracy(output, target):
  """tllib/utils/metric binary_accuracy (in percent): output >= 0.5 predicts 1."""
  return 100.0 * np.mean((output >= 0.5).astype(float).reshape(-1) == target.reshape(-1))


def dann_adversarial_loss(d_s, d_t):
  """tllib/alignment/dann.py DomainAdversarialLoss.forward (sigmoid=True, no weights) after
  D, on its (N, 1) probabilities: (loss, domain_discriminator_accuracy). ADDA's example uses
  it, source label 1, target label 0."""
  label_s, label_t = np.ones_like(d_s), np.zeros_like(d_t)
  accuracy = 0.5 * (binary_accuracy(d_s, label_s) + binary_accuracy(d_t, label_t))
  return 0.5 * (binary_cross_entropy(d_s, label_s) + binary_cross_entropy(d_t, label_t)), accuracy


def adda_adversarial_loss(domain_pred, domain_label='source'):
  """tllib/alignment/adda.py DomainAdversarialLoss.forward: BCE against all ones ('source')
  or all zeros ('target'); the inverted-label loss of the target encoder is 'source'."""
  assert domain_label in ['source', 'target']
  target = np.ones_like if domain_label == 'source' else np.zeros_like
  return binary_cross_entropy(domain_pred, target(domain_pred))


# ----------------------------------------------------------------------------- others


def mcc(logits, temperature):
  """tllib/self_training/mcc.py MinimumClassConfusionLoss.forward."""
  batch_size, num_classes = logits.shape
  predictions = softmax(logits / temperature)
  entropy_weight = entropy(predictions)
  entropy_weight = 1 + np.exp(-entropy_weight)
  entropy_weight = (batch_size * entropy_weight / np.sum(entropy_weight))[:, None]
  class_confusion_matrix = (predictions * entropy_weight).T @ predictions
  class_confusion_matrix = class_confusion_matrix / np.sum(class_confusion_matrix, axis=1)
  return (np.sum(class_confusion_matrix) - np.trace(class_confusion_matrix)) / num_classes


def afn(f, delta):
  """tllib/normalization/afn.py AdaptiveFeatureNorm(delta).forward: (value, d value / d f)."""
  radius = np.linalg.norm(f, axis=1) + delta
  norm = np.linalg.norm(f, axis=1)
  value = ((norm - radius) ** 2).mean()
  grad = (2 * (norm - radius) / len(f))[:, None] * f / norm[:, None]   # radius detached
  return value, grad


def aad_step(fea_bank, score_bank, features, softmax_out, tar_idx, k, alpha):
  """AaD_SFDA tar_adaptation.py, one iteration's loss (after `alpha` is computed).

  Returns (loss, new fea_bank, new score_bank).
  """
  fea_bank, score_bank = fea_bank.copy(), score_bank.copy()
  output_f_ = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  fea_bank[tar_idx] = output_f_
  score_bank[tar_idx] = softmax_out
  distance = output_f_ @ fea_bank.T
  idx_near = np.argsort(-distance, axis=-1, kind='stable')[:, :k + 1]
  idx_near = idx_near[:, 1:]
  score_near = score_bank[idx_near]                                 # batch x K x C
  softmax_out_un = np.broadcast_to(softmax_out[:, None, :], score_near.shape)
  kl = np.where(score_near > 0, score_near * np.log(np.where(score_near > 0, score_near, 1)),
                0.0) - score_near * softmax_out_un                 # F.kl_div(input, target)
  loss = np.mean(kl.sum(-1).sum(1))
  n = features.shape[0]
  mask = np.ones((n, n)) - np.diag(np.ones(n))
  dot_neg = softmax_out @ softmax_out.T
  dot_neg = (dot_neg * mask).sum(-1)
  loss += np.mean(dot_neg) * alpha
  return loss, fea_bank, score_bank


def aad_alpha(iter_num, max_iter, alpha, beta):
  return (1 + 10 * iter_num / max_iter) ** (-beta) * alpha


# ----------------------------------------------------------------------------- a method to test


def make_method(cls, num_classes=3, total=10, num_examples=8, **config):
  config = ml_collections.ConfigDict({**cls.example_config(), **config})
  check_block(cls, config)
  model = build_model({'name': 'cnn', 'widths': (4, 8), 'features': 6},
                      cls.heads(config, num_classes))
  method = cls(config, model, RunFacts(num_steps=total, batch_size=4, epoch_steps=1,
                                       num_examples=num_examples))
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  return method, variables


def paired_batch(seed=0, n=4, num_classes=3):
  rng = np.random.default_rng(seed)
  return {'image': rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8),
          'label': rng.integers(0, num_classes, n),
          'target_image': rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)}


def paired_outputs(method, variables, batch, params=None, heads=('head',)):
  """(source outputs, target outputs, batch_stats) as numpy, from model.apply directly:
  one pass on the concatenated batch ('joint') or one per domain, statistics of the
  target pass ('per_domain')."""
  params = variables['params'] if params is None else params

  def forward(images):
    return method.model.apply({'params': params, 'batch_stats': variables['batch_stats']},
                              jnp.asarray(images, jnp.float32) / 255, train=True, heads=heads,
                              mutable=['batch_stats'])

  n = len(batch['image'])
  if method.config.batch_norm == 'joint':
    out, stats = forward(np.concatenate([batch['image'], batch['target_image']]))
    out_s = {k: v[:n] for k, v in out.items()}
    out_t = {k: v[n:] for k, v in out.items()}
  else:
    out_s, _ = forward(batch['image'])
    out_t, stats = forward(batch['target_image'])
  as_np = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float64), tree)
  return as_np(out_s), as_np(out_t), stats['batch_stats']


def model_state(variables, step):
  return {'batch_stats': variables['batch_stats'], 'step': jnp.int32(step), 'extra': {}}


def flat(tree):
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}
