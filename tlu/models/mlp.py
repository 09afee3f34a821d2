"""An MLP backbone: flattened inputs -> Dense -> BatchNorm -> ReLU ... -> `features`.

For vector data (tabular features, precomputed embeddings) and for checks of the
house that must compile in a second on a CPU (tests/methods_check.py).
"""

import flax.linen as nn
import jax.numpy as jnp

from tlu import checks
from tlu.models import MODELS
from tlu.models.norm import BatchNorm


@MODELS.register('mlp', ranges={'widths': checks.WIDTHS})
def build(c):
  """MLPBackbone from a model config (widths, features >= 1, use_bn)."""
  features = c.get('features', 128)
  if features < 1:
    raise ValueError(f'model.features={features}: must be an integer >= 1 for this model')
  return MLPBackbone(widths=tuple(c.get('widths', (256,))), features=features,
                     use_bn=c.get('use_bn', True))


class MLPBackbone(nn.Module):
  """(N, ...) -> (N, features): hidden layers `widths` (BatchNorm if use_bn), then features."""
  widths: tuple = (256,)
  features: int = 128
  use_bn: bool = True

  @nn.compact
  def __call__(self, x, train=False):
    x = jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)
    for i, width in enumerate(self.widths):
      x = nn.Dense(width, use_bias=not self.use_bn, name=f'dense{i}')(x)
      if self.use_bn:
        x = BatchNorm(momentum=0.9, name=f'bn{i}')(x, train)
      x = nn.relu(x)
    return nn.relu(nn.Dense(self.features, name='fc')(x))
