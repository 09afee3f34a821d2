"""AaD: attracting and dispersing (Yang, Wang, Wang, Jui & van de Weijer, 2022, NeurIPS,
"Attracting and Dispersing: A Simple Approach for Source-free Domain Adaptation").
Source-free: it starts from a trained source model and reads unlabelled target images only.

Each target prediction p_i is attracted to the predictions of its K nearest
neighbours in feature space and dispersed from the other predictions of the batch
(the paper's objective, an upper bound of its clustering objective):
  L = -1/N sum_i sum_{j in C_i} p_i . s_j  +  alpha(t) / N sum_i sum_{m in B_i} p_i . p_m,
C_i the K nearest neighbours of x_i in a memory bank of the L2-normalised features
of every target image (cosine similarity, x_i itself excluded), s_j the bank's stored
prediction of neighbour j, B_i the other images of the batch, and
alpha(t) = alpha * (1 + 10 t / T)^(-beta) decaying over the run (t the step, T the steps).

Transcribes the reference code (`tar_adaptation.py` of github.com/Albert0147/AaD_SFDA):
the banks are filled with the source model's (eval-mode) features and predictions of
the whole target set before the first step (`host_update`); each step writes the
batch's normalised features and predictions (without gradient) into the banks at the
batch's indices, then takes the K + 1 most similar bank entries and drops the first
(the example itself); the attraction term is computed as the reference does, as
sum_k KL-div(input=p_i, target=s_k) = sum_k sum_c s_kc (log s_kc - p_ic), equal to the
dot product up to a term without gradient; the classifier is trained too (no frozen
head). The banks live in `extra` (checkpointed, so a resumed run is exact).
Reference settings: K = 5, alpha = 1, beta = 5 (VisDA, `tar_adaptation.py`'s defaults);
K = 3, beta = 1 on Office-31 (`office-home/office31_tar.sh`); K = 3, alpha = 1 on
Office-Home (`office-home/train_tar_oh.sh`). The paper has no digit experiment.
"""

import jax
import jax.numpy as jnp
import numpy as np

from tlu import checks
from tlu.methods import METHODS
from tlu.methods.base import Method
from tlu.methods.output import LossOutput
from tlu.models import heads as heads_lib
from tlu.ops import l2_normalize
from tlu.train import mesh as mesh_lib


def neighbours(query, bank, k):
  """Indices (N, k) of the k most similar rows of bank (M, F) to each query (N, F), by dot
  product, after dropping the most similar one (the query's own row in the bank)."""
  _, idx = jax.lax.top_k(query @ bank.T, k + 1)
  return idx[:, 1:]


def attract_disperse(probs, neighbour_scores, alpha):
  """AaD's two terms. probs: (N, C) batch predictions; neighbour_scores: (N, K, C) banked
  predictions of their neighbours (no gradient). Returns (loss, attract, disperse) with
  attract = mean_i sum_k sum_c s xlogy(s) - s p (the reference's KL form) and
  disperse = mean_i sum_{m != i} p_i . p_m, loss = attract + alpha * disperse.
  """
  s = jax.lax.stop_gradient(neighbour_scores)
  attract = jnp.mean(jnp.sum(jax.scipy.special.xlogy(s, s) - s * probs[:, None, :],
                             axis=(1, 2)))
  gram = probs @ probs.T
  disperse = jnp.mean(jnp.sum(gram, axis=1) - jnp.diagonal(gram))
  return attract + alpha * disperse, attract, disperse


def dispersion_weight(step, num_steps, alpha, beta):
  """alpha * (1 + 10 step / num_steps)^(-beta)."""
  return alpha * (1.0 + 10.0 * jnp.asarray(step, jnp.float32) / num_steps) ** (-beta)


@METHODS.register('aad')
class AaD(Method):
  """Loss = attract + alpha(t) * disperse (see the module docstring).

  config: k >= 1 (neighbours), alpha >= 0, beta >= 0 (the dispersion weight's decay).
  Method state: extra['features'] (N, F) normalised features and extra['scores'] (N, C)
  predictions of the N target training images. batch: {'image': (B, H, W, C) uint8
  target images, 'index': (B,) their positions in the target split}.
  """
  ranges = {'alpha': checks.NON_NEGATIVE, 'beta': checks.NON_NEGATIVE, 'k': checks.POSITIVE_INT}
  inputs = 'indexed'
  from_source = True

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._classify = jax.jit(lambda params, f: self.model.apply(
        {'params': params}, 'head', f, method='apply_head'))

  @classmethod
  def example_config(cls):
    return {'k': 3, 'alpha': 1.0, 'beta': 5.0}

  @classmethod
  def heads(cls, config, num_classes):
    return {'head': heads_lib.classifier(num_classes)}

  def init_extra(self, variables, rng):
    del rng
    features_dim, num_classes = variables['params']['head']['kernel'].shape
    if self.config.k + 1 > self.facts.num_examples:
      raise ValueError(f'method.k={self.config.k}: needs more than k + 1 = {self.config.k + 1} '
                       f'target examples, the split has {self.facts.num_examples}')
    return {'features': jnp.zeros((self.facts.num_examples, features_dim), jnp.float32),
            'scores': jnp.zeros((self.facts.num_examples, num_classes), jnp.float32)}

  def host_update(self, state, host):
    """Fills the banks from the current (source) model before the first step."""
    features, _ = host.features(state, 'train')   # the target's labels are not used
    logits = self._classify(state.params, features)
    banks = {'features': l2_normalize(jnp.asarray(features, jnp.float32)),
             'scores': jax.nn.softmax(jnp.asarray(logits, jnp.float32), -1)}
    banks = jax.device_put(jax.tree.map(np.asarray, banks), mesh_lib.replicated(host.mesh))
    return state.replace(extra={**state.extra, **banks}), {}

  def loss_fn(self, params, model_state, batch, rng):
    out, batch_stats = self.forward(params, model_state, self.images(batch, rng), ('head',))
    probs = jax.nn.softmax(out['head'].astype(jnp.float32), -1)
    query = jax.lax.stop_gradient(l2_normalize(out['features'].astype(jnp.float32)))
    index = batch['index']
    extra = model_state['extra']
    bank = extra['features'].at[index].set(query)
    scores = extra['scores'].at[index].set(jax.lax.stop_gradient(probs))
    near = neighbours(query, bank, self.config.k)
    alpha = dispersion_weight(model_state['step'], self.facts.num_steps, self.config.alpha,
                              self.config.beta)
    loss, attract, disperse = attract_disperse(probs, scores[near], alpha)
    agreement = jnp.mean(jnp.argmax(scores[near], -1) == jnp.argmax(probs, -1)[:, None])
    metrics = {'attract': attract, 'disperse': disperse, 'alpha': alpha,
               'neighbour_agreement': agreement}
    return LossOutput(loss=loss, batch_stats=batch_stats, metrics=metrics, outputs=out,
                      extra={**extra, 'features': bank, 'scores': scores})
