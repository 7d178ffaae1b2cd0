"""Constants of the fingerprint minutiae extractor, with units, in one place.

Every length is pixels at :data:`REFERENCE_DPI` (500 dpi, where the ridge period of an adult
finger is 8 to 11 px); images at other resolutions are rescaled to it first. Nothing here is
fitted to one sensor's geometry.
"""

import math

#: Resolution every length below refers to.
REFERENCE_DPI = 500

# ----------------------------------------------------------------------------- input limits
#: Smallest and largest image side accepted, after rescaling to 500 dpi.
MIN_IMAGE_SIDE_PX = 64
MAX_IMAGE_SIDE_PX = 4096

# ---------------------------------------------------------------------- orientation field
#: Gaussian pre-smoothing before the Sobel gradients (removes pixel noise).
GRADIENT_SIGMA_PX = 1.0
#: Integration scale of the gradient structure tensor (about half a ridge period).
TENSOR_SIGMA_PX = 4.0
#: Smoothing of the doubled-angle orientation vectors (about 1.5 ridge periods).
ORIENTATION_SIGMA_PX = 9.0

# --------------------------------------------------------------------------- segmentation
#: Scale of the coherent-energy map the foreground is thresholded on.
SEGMENT_SIGMA_PX = 8.0
#: A pixel is foreground where the coherent gradient energy reaches this fraction of the
#: image's 95th percentile ...
SEGMENT_RELATIVE_ENERGY = 0.1
#: ... and this absolute floor (grey levels squared per px squared: a ridge contrast of about
#: +-8 grey levels), so a blank or flat image has no foreground at all ...
SEGMENT_MIN_ENERGY = 6.0
#: ... and the orientation coherence reaches this (noise is incoherent).
SEGMENT_MIN_COHERENCE = 0.15
#: Morphological clean-up radius (closing then opening) of the foreground mask.
SEGMENT_MORPH_RADIUS_PX = 8
#: Foreground regions smaller than this fraction of the largest one are dropped, and so are
#: regions under this area (about 4 x 4 mm): on noise, coherence fluctuates above the floor in
#: patches a ridge period or two across, never over a finger-sized area.
SEGMENT_MIN_REGION_FRACTION = 0.1
SEGMENT_MIN_REGION_PX2 = 4000

# ------------------------------------------------------------------------- normalisation
#: Local mean and contrast normalisation scale.
NORMALISE_SIGMA_PX = 8.0

# ------------------------------------------------------------------------ ridge frequency
#: Blocks on which the ridge period is measured (side) and the half length of the profile
#: taken across the ridges at each block centre.
PERIOD_BLOCK_PX = 16
PERIOD_PROFILE_HALF_PX = 16
#: Plausible ridge periods at 500 dpi; measurements outside are discarded.
MIN_RIDGE_PERIOD_PX = 5.0
MAX_RIDGE_PERIOD_PX = 15.0
#: A fingerprint has a measurable period in most foreground blocks (FVC2002: 74 % at worst,
#: 96 % typically); stripes or texture at another scale have almost none.
MIN_PERIOD_MEASURED_FRACTION = 0.3
#: Smoothing of the period map (in blocks).
PERIOD_SMOOTH_BLOCKS = 2.0

# ---------------------------------------------------------------------------- enhancement
#: Orientation bins of the oriented filters (pi / 24 = 7.5 degrees each).
ENHANCE_ORIENTATIONS = 24
#: Gabor envelope along the ridge (Hong, Wan, Jain 1998 use 4 px) and its half length.
ENHANCE_ALONG_SIGMA_PX = 4.0
ENHANCE_ALONG_HALF_PX = 10
#: Gabor envelope across the ridge as a fraction of the local period, and its half length.
ENHANCE_ACROSS_SIGMA_PERIODS = 0.5
ENHANCE_ACROSS_HALF_PX = 8

# -------------------------------------------------------------------------- binarisation
#: Thinning passes at most (each peels one pixel per side; ridges are under ~10 px wide), so a
#: pathological image cannot make thinning run long.
MAX_THINNING_ITERATIONS = 32
#: Ridge fragments and valley holes smaller than this area are removed (px^2).
MIN_RIDGE_AREA_PX2 = 30
MIN_HOLE_AREA_PX2 = 30

# ------------------------------------------------------------------------------ minutiae
#: Skeleton length traced from a minutia to measure its direction.
DIRECTION_TRACE_PX = 10
#: Longest skeleton trace when looking for spurs, short ridges and bridges.
MAX_TRACE_PX = 20
#: A ridge ending joined to a bifurcation by a skeleton path shorter than this is a spur.
SPUR_MAX_PX = 6
#: Two endings joined by a skeleton path shorter than this are a short ridge fragment.
SHORT_RIDGE_MAX_PX = 8
#: Two bifurcations joined by a path shorter than this are a bridge or a hole.
BRIDGE_MAX_PX = 6
#: Two endings closer than this whose directions face each other are a broken ridge ...
BREAK_MAX_PX = 16.0
#: ... when their directions are within this of opposite.
BREAK_MAX_ANGLE_RAD = math.pi / 4
#: Minutiae closer than this to the edge of the foreground (or the image) are dropped.
BORDER_MARGIN_PX = 8.0
#: Minutiae with more than CLUSTER_MAX_NEIGHBOURS others within CLUSTER_RADIUS_PX are dropped.
CLUSTER_RADIUS_PX = 12.0
CLUSTER_MAX_NEIGHBOURS = 2

# ------------------------------------------------------------------------------- quality
#: At least this many minutiae, and this much foreground (px^2 at 500 dpi; about 6 x 6 mm),
#: or the image is refused as QualityTooLow.
MIN_MINUTIAE = 5
MIN_FOREGROUND_PX2 = 9000
#: Foreground area at which the area term of the image quality saturates (about 12 x 15 mm).
FULL_QUALITY_FOREGROUND_PX2 = 70000
#: Distance to the foreground edge at which a minutia's quality stops growing.
QUALITY_BORDER_PX = 32.0
