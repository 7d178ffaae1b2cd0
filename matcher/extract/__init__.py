"""From captured images to templates.

- :mod:`matcher.extract.image`: bytes or files (PNG, BMP, TIFF, JPEG, JPEG 2000, WSQ) to an 8-bit
  grey array, with size limits checked before any pixel is decoded.
- :mod:`matcher.extract.fingerprint`: fingerprint image to
  :class:`~matcher.templates.FingerTemplate` and an image quality score.
- :mod:`matcher.extract.iris`: near-infrared eye image to :class:`~matcher.iris.IrisTemplate` and
  quality measures.

Submodules are imported on use: the iris and finger engines do not need OpenCV.
"""
