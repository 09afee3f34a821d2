"""Convert a checkpoint file you downloaded into a tlu run directory (nothing is downloaded):

  python -m experiments.convert --config=configs/convert.py:<torchvision|timm|big_vision> \
      --config.arch=<resnet18|resnet34|resnet50|resnet101|vit_s16|vit_s32|vit_b16|vit_b32|
                     vit_l16|vit_l32> --config.checkpoint=<file> --workdir=<dir>

torchvision: ResNet state dicts (.pth, .safetensors); timm: ResNets and ViTs (.safetensors,
.pth / .bin); big_vision: ViTs (.npz, also the vision_transformer repository's). Where each
family's files are published: docs/pretrained.md. The run directory (config.json with the
model and its input convention, an orbax checkpoint) is then a `--config.source` of every
stage, e.g. `python -m experiments.transfer --config.source=<dir>`. `model.*` overrides the
architecture's sizes or the recorded input convention; `model.image_size` resamples a
ViT's position embeddings (for a ResNet it is only recorded).
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.format = arg or 'torchvision'     # torchvision | timm | big_vision
  c.arch = ''                         # a tlu model name (above)
  c.checkpoint = ''                   # the file on disk
  c.model = ml_collections.ConfigDict(dict(
      width=config_dict.placeholder(int),        # sizes: the architecture's by default
      depth=config_dict.placeholder(int),        # (ViT only: depth, mlp_dim, num_heads)
      mlp_dim=config_dict.placeholder(int),
      num_heads=config_dict.placeholder(int),
      image_size=config_dict.placeholder(int),   # default: the file's (ViT) or 224
      input_mean=config_dict.placeholder(tuple),  # default: the format's convention
      input_std=config_dict.placeholder(tuple),
      input_range=config_dict.placeholder(tuple)))
  return c
