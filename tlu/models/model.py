"""A backbone with named task heads: the parameter tree is {'backbone', 'head', 'projector', 'domain_head'}.

Top-level names are the shared/specific split that transfer works on: surgery
copies `backbone/...`, masks freeze it, new tasks bring a fresh `head`.
"""

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from tlu.ops import l2_normalize


class MLP(nn.Module):
  """Dense -> ReLU ... -> Dense; `dims` are the output widths of each layer."""
  dims: tuple

  @nn.compact
  def __call__(self, x):
    for i, d in enumerate(self.dims):
      x = nn.Dense(d, name=f'dense{i}')(x)
      if i < len(self.dims) - 1:
        x = nn.relu(x)
    return x


class Model(nn.Module):
  """Images in [0, 1], (N, H, W, C) -> {'features', 'logits'?, 'projection'?}.

  Attributes:
    backbone: a module mapping images to (N, F) features.
    num_classes: size of the classifier `head` (None: no head).
    projector: output widths of the contrastive `projector` MLP (None: none).
    domain_head: output widths of the DANN `domain_head` MLP (None: none); it is
      applied through `domain_logits` so the caller can reverse gradients first.
    head_l2_scale: None: the head sees the features. s: it sees s * features / ||features||,
      logistic regression on L2-normalised features, the usual probe of contrastive
      features (NT-Xent shapes their directions, not their norms); s sets the logit scale.
  """
  backbone: nn.Module
  num_classes: Optional[int] = None
  projector: Optional[tuple] = None
  domain_head: Optional[tuple] = None
  head_l2_scale: Optional[float] = None

  def setup(self):
    if self.num_classes:
      self.head = nn.Dense(self.num_classes)
    if self.projector:
      self.projector_mlp = MLP(tuple(self.projector), name='projector')
    if self.domain_head:
      self.domain_mlp = MLP(tuple(self.domain_head), name='domain_head')

  def __call__(self, images, train: bool = False, frozen: tuple = ()):
    """`frozen` names top-level subtrees whose BatchNorm uses running averages."""
    x = (images.astype(jnp.float32) - 0.5) / 0.25
    features = self.backbone(x, train=train and 'backbone' not in frozen)
    out = {'features': features}
    if self.num_classes:
      out['logits'] = self.classify(features)
    if self.projector:
      out['projection'] = self.projector_mlp(features)
    if self.domain_head and self.is_initializing():
      out['domain_logits'] = self.domain_mlp(features)
    return out

  def classify(self, features):
    """The head's logits for backbone features (through the L2 normalisation if any)."""
    if self.head_l2_scale is not None:
      features = self.head_l2_scale * l2_normalize(features)
    return self.head(features)

  def domain_logits(self, features):
    return self.domain_mlp(features)
