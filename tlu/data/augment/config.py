"""What to augment: `AugmentConfig`, the named `PRESETS`, and `resolve_config`."""

import dataclasses
from typing import Mapping, Optional, Tuple

from tlu import checks


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """What to apply, in this order: crop, flip, affine, jitter, gray, blur, solarize, noise,
  invert, shift, RandAugment, cutout.

  The default applies nothing. A probability of 0 (or a `None` crop scale)
  removes the op from the compiled function.

  Attributes:
    crop_scale: (min, max) area fraction of a random resized crop, or None.
    crop_ratio: (min, max) aspect ratio (width / height) of the crop.
    flip_prob: probability of a horizontal (left-right) flip.
    affine_prob: probability of a random affine warp about the image centre.
    rotate_deg: rotation angle drawn from U(-rotate_deg, rotate_deg) degrees.
    shear_deg: horizontal shear angle drawn from U(-shear_deg, shear_deg).
    translate_frac: shift drawn from U(-f, f) * size along each axis.
    affine_fill: dm-pix `mode` for pixels warped in from outside: 'constant'
      (black, for digits on a black background) or 'nearest' (edge colour).
    jitter_prob: probability of colour jitter (torchvision `ColorJitter`
      semantics: factors drawn from [max(0, 1 - s), 1 + s], hue from [-h, h]).
    brightness, contrast, saturation, hue: jitter strengths; 0 disables one.
    jitter_random_order: apply the jitter ops in a random order per image.
    grayscale_prob: probability of converting to grayscale (channels kept).
    blur_prob: probability of Gaussian blur.
    blur_sigma: (min, max) of the blur sigma in pixels.
    blur_kernel_frac: kernel side as a fraction of the image side (SimCLR: 10%).
    solarize_prob: probability of solarization (BYOL, Grill et al. 2020, Table 6):
      pixels >= solarize_threshold become 1 - x, the others stay.
    solarize_threshold: that threshold (0.5 on [0, 1], as BYOL's 128 on [0, 255]).
    noise_prob: probability of additive Gaussian noise.
    noise_std: standard deviation of that noise.
    invert_prob: probability, per channel, of inverting it (x -> 1 - x): a
      digit composited as |background - digit| keeps its polarity in a channel
      where the background is dark and flips it where it is bright.
    shift_frac: FixMatch's weak translation: reflect-pad by round(shift_frac * side)
      pixels and crop back at a random whole-pixel offset (0.125: 4 px of 32).
    randaugment_ops: RandAugment's number of ops per image, drawn from FixMatch's 14
      with random magnitudes (`tlu.data.augment.randaugment`); 0: off.
    cutout_frac: USB's Cutout after RandAugment: a grey square of side
      U(0, cutout_frac) * width (`tlu.data.augment.cutout`; USB: 0.5); 0: off.
  """
  crop_scale: Optional[Tuple[float, float]] = None
  crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.0
  affine_prob: float = 0.0
  rotate_deg: float = 0.0
  shear_deg: float = 0.0
  translate_frac: float = 0.0
  affine_fill: str = 'constant'
  jitter_prob: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  jitter_random_order: bool = True
  grayscale_prob: float = 0.0
  blur_prob: float = 0.0
  blur_sigma: Tuple[float, float] = (0.1, 2.0)
  blur_kernel_frac: float = 0.1
  solarize_prob: float = 0.0
  solarize_threshold: float = 0.5
  noise_prob: float = 0.0
  noise_std: float = 0.0
  invert_prob: float = 0.0
  shift_frac: float = 0.0
  randaugment_ops: int = 0
  cutout_frac: float = 0.0


RANGES = {   # of an augmentation mapping's keys (AugmentConfig fields)
    **{f.name: checks.UNIT for f in dataclasses.fields(AugmentConfig)
       if f.name.endswith('_prob') or f.name.endswith('_frac')},
    'crop_scale': checks.UNIT, 'rotate_deg': checks.NON_NEGATIVE,
    'shear_deg': checks.NON_NEGATIVE, 'noise_std': checks.NON_NEGATIVE,
    'blur_sigma': checks.NON_NEGATIVE, 'randaugment_ops': checks.NON_NEGATIVE_INT,
}

PRESETS = {
    # solo-learn's SimCLR CIFAR recipe: no blur on 32x32 images.
    'simclr_cifar': AugmentConfig(
        crop_scale=(0.08, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2),
    # SimCLR Appendix A, colour strength s = 1 (0.8s, 0.8s, 0.8s, 0.2s), blur p=0.5.
    'simclr_imagenet': AugmentConfig(
        crop_scale=(0.08, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
        grayscale_prob=0.2, blur_prob=0.5),
    # Supervised ImageNet training ("Inception crop" + flip, He et al. 2016).
    'supervised_imagenet': AugmentConfig(crop_scale=(0.08, 1.0), flip_prob=0.5),
    # BYOL's asymmetric pair (Grill et al. 2020, Table 6): blur always in the first view,
    # rarely in the second, which alone is solarized; for {'views': [...]} specs.
    'byol_view1': AugmentConfig(
        crop_scale=(0.08, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2, blur_prob=1.0),
    'byol_view2': AugmentConfig(
        crop_scale=(0.08, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2, blur_prob=0.1, solarize_prob=0.2),
    # DINO's multi-crop (Caron et al. 2021, reference code): BYOL's two views as global
    # crops of 40-100% of the image, local crops of 5-40% with blur p=0.5, e.g.
    # {'views': ['dino_global1', 'dino_global2'], 'local': 'dino_local',
    #  'local_crops': 6, 'local_size': 96} for 224x224 inputs.
    'dino_global1': AugmentConfig(
        crop_scale=(0.4, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2, blur_prob=1.0),
    'dino_global2': AugmentConfig(
        crop_scale=(0.4, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2, blur_prob=0.1, solarize_prob=0.2),
    'dino_local': AugmentConfig(
        crop_scale=(0.05, 0.4), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2, blur_prob=0.5),
    # 8x8 grayscale digits: digits are not mirror-invariant (no flip) and have
    # no colour; mild crops, small warps and pixel noise.
    'digits': AugmentConfig(
        crop_scale=(0.6, 1.0), affine_prob=0.8, rotate_deg=15.0, shear_deg=10.0,
        translate_frac=0.1, affine_fill='constant', noise_prob=0.5,
        noise_std=0.05),
    # 32x32 RGB digits over textures (tlu_digits_m): crops and warps as for
    # digits, SimCLR colour distortion on top; still no flip.
    'digits_rgb': AugmentConfig(
        crop_scale=(0.5, 1.0), affine_prob=0.8, rotate_deg=15.0, shear_deg=10.0,
        translate_frac=0.1, affine_fill='nearest',
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
        grayscale_prob=0.2),
    # A source model for |background - digit| targets: each channel's polarity
    # and contrast vary, as they do over a photograph; no crop or warp.
    'digits_polarity': AugmentConfig(
        invert_prob=0.5, jitter_prob=0.8, brightness=0.4, contrast=0.4),
    # FixMatch's views (Sohn et al. 2020, Section 2.3; USB's transforms): weak = flip +
    # translate by up to 12.5%; strong = weak + RandAugment (2 ops, random magnitudes)
    # + Cutout. The digits variants leave out the flip.
    'fixmatch_weak': AugmentConfig(flip_prob=0.5, shift_frac=0.125),
    'fixmatch_strong': AugmentConfig(flip_prob=0.5, shift_frac=0.125, randaugment_ops=2,
                                     cutout_frac=0.5),
    'digits_weak': AugmentConfig(shift_frac=0.125),
    'digits_strong': AugmentConfig(shift_frac=0.125, randaugment_ops=2, cutout_frac=0.5),
}


def resolve_config(config):
  """A preset name, an `AugmentConfig`, or a mapping -> `AugmentConfig`.

  A mapping (dict, ml_collections ConfigDict) may name a base preset under
  `preset`; its other keys override fields of that preset (or of the identity
  default), e.g. `{'preset': 'simclr_cifar', 'blur_prob': 0.5}`.
  """
  if isinstance(config, AugmentConfig):
    return config
  if isinstance(config, str):
    if config not in PRESETS:
      raise ValueError(f'Unknown augmentation preset {config!r}; '
                       f'known: {sorted(PRESETS)}.')
    return PRESETS[config]
  if hasattr(config, 'to_dict'):  # ml_collections.ConfigDict
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise TypeError('An augmentation config is a preset name, an AugmentConfig '
                    f'or a mapping, not {type(config).__name__}.')
  overrides = dict(config)
  checks.check_values(overrides, RANGES)
  base = resolve_config(overrides.pop('preset')) if 'preset' in overrides else (
      AugmentConfig())
  fields = {f.name for f in dataclasses.fields(AugmentConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f'Unknown augmentation option(s) {unknown}; '
                     f'known: {sorted(fields)} and `preset`.')
  overrides = {k: tuple(v) if isinstance(v, (list, tuple)) else v
               for k, v in overrides.items()}
  return dataclasses.replace(base, **overrides)
