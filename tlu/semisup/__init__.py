"""Shared blocks of the semi-supervised methods (few labels plus unlabelled data).

- `thresholds`: FixMatch's fixed threshold, FlexMatch's curriculum thresholds, FreeMatch's
  self-adaptive thresholds and fairness term, SoftMatch's uniform alignment and truncated
  Gaussian weights: each stateful rule `(state, inputs) -> (new_state, mask)`.
- `consistency`: cross-entropy / MSE consistency, UDA's TSA, sharpening, MixUp, ramp-ups,
  Mean Teacher's EMA decay.
- `views`: the weak and strong augmentations (the RandAugment hook).
- `method`: `SemiSupervised`, the base of the method files (tlu/methods/fixmatch.py, ...):
  the classifier head, the views, one forward pass over labelled + weak + strong images;
  its batches are the 'labelled_unlabelled' layout of `tlu.methods.layouts`.
"""
