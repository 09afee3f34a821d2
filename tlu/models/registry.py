"""Models are built from config by name, so a checkpoint's config.json rebuilds its architecture.

The model config names the backbone (a name in `tlu.models.MODELS`) and its sizes only;
the heads come from the method that trains it (`tlu.methods`), so a run's `config.model`
rebuilds the backbone whatever method made it. It also carries the input convention the
backbone expects (`input_range`, `input_mean`, `input_std`: `tlu.models.model.normalize`;
tlu's (x - 0.5) / 0.25 when absent) and, for a ViT, the `image_size` its position
embeddings are made for, so a converted checkpoint sees its inputs as it was trained on them.
"""

from tlu.models import MODELS
from tlu.models.model import Model, input_convention


def build_model(cfg, heads=None):
  """cfg: mapping with `name` in MODELS and the backbone's sizes; heads: {name: Head} or pairs."""
  backbone = MODELS.get(cfg['name'])(cfg)
  heads = tuple((heads or {}).items()) if isinstance(heads, dict) or heads is None else tuple(heads)
  return Model(backbone=backbone, heads=heads, **input_convention(cfg))
