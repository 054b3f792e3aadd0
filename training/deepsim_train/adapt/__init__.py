"""Self-supervised adaptation of a bundle to a user's own unlabeled epipolar pairs.

``deepsim-train adapt --bundle models/msaff --pairs DIR [DIR ...] --out models/msaff-adapted``:

1. :mod:`.pairs` finds the left/right images of each pair folder and its search range;
2. :mod:`.pseudo` runs the engine (census + SGM with the left-right check, and/or the current
   bundle) on each pair and keeps the confident, consistent pixels as pseudo-labels;
3. :mod:`.loop` fine-tunes the bundle's weights (loaded by :mod:`deepsim_train.bundle_import`)
   with the training losses on real crops at the pseudo-labels, alternated with supervised
   synthetic crops so the model does not drift; interruptible, resumable, time-budgeted;
4. the result is exported as a normal bundle with a card (:mod:`.card`) and a compact
   committable checkpoint (:mod:`deepsim_train.compact`).
"""

from .loop import AdaptConfig, run_adapt

__all__ = ["AdaptConfig", "run_adapt"]
