"""deepsim_train: the training side of deepsim (learned per-pixel similarity for stereo).

Conventions used everywhere in this package (and by the Rust engine):

* Disparity: left pixel ``(x, y)`` matches right pixel ``(x - d, y)``. Datasets in another
  convention are converted when they are read (see :mod:`deepsim_train.data`).
* Intensities: a model input is grey in ``[0, 1]``; see :func:`deepsim_train.imageio.to_unit`.
* Feature maps: ``[B, C, H, W]``, one ``C``-d embedding per pixel at full resolution.
"""

__version__ = "0.1.0"

CONTRACT_VERSION = 1
