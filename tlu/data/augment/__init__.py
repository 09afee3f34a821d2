"""On-device image augmentations for contrastive learning, run inside `jax.jit`.

SimCLR's views (Chen et al., 2020, Section 3 and Appendix A) come from a random
resized crop, a horizontal flip, colour jitter applied with probability 0.8,
grayscale with probability 0.2 and, on ImageNet, Gaussian blur with probability
0.5. Doing this on the accelerator keeps the host pipeline a plain uint8 loader
and lets each device augment its own shard of the global batch.

Every example gets its own key (the batch key is split into N keys and a
per-image function is vmapped), so a view is a pure function of (key, image):
the same key reproduces it, jit or not. Shapes are static: a crop is resampled
back to the input size with `jax.image.scale_and_translate`.

Images are float in [0, 1], NHWC, with 1 or 3 channels. Hue and saturation need
RGB and are skipped for 1-channel images; grayscale of a 1-channel image is the
image itself.

Modules:
- `config`: `AugmentConfig`, the named `PRESETS`, `resolve_config`.
- `geometric`: per-image random resized crop and random affine warp.
- `photometric`: per-image colour jitter, grayscale, Gaussian blur and solarization.
- `pil_ops`: Pillow's ImageOps / ImageEnhance / affine ops on one image of grey levels.
- `randaugment`: FixMatch's RandAugment (14 ops, random magnitudes) and weak shift.
- `cutout`: USB's Cutout (the module; `cutout.cutout` is the op).
- `pipeline`: `augment_image`, the ops of a config applied to one image in order.
- `batch`: `make_augment` (a batch of images, one key each), `two_views`, and
  `MultiView` (per-view pipelines and multi-crop's local crops, from a spec
  `{'views': [spec, ...], 'local': spec, 'local_crops': N, 'local_size': s}`).
"""

from tlu.data.augment.batch import (Augment, MultiView, is_multi_view, make_augment,
                                    num_global_views, two_views, views)
from tlu.data.augment.config import PRESETS, AugmentConfig, resolve_config
from tlu.data.augment.geometric import random_affine, random_resized_crop, resized_crop
from tlu.data.augment.photometric import (color_jitter, grayscale, random_gaussian_blur,
                                          solarize)
from tlu.data.augment.pipeline import augment_image
from tlu.data.augment.randaugment import rand_augment, random_shift

__all__ = ['views', 'Augment', 'AugmentConfig', 'MultiView', 'PRESETS', 'augment_image',
           'color_jitter', 'grayscale', 'is_multi_view', 'make_augment',
           'num_global_views', 'rand_augment', 'random_affine', 'random_gaussian_blur',
           'random_resized_crop', 'random_shift', 'resized_crop', 'resolve_config', 'solarize',
           'two_views']
