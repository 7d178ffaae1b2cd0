"""Algorithm constants of iris extraction, with units, in one place.

No constant here is a pixel size tuned to one camera: sizes are fractions of the image side, of
the detected pupil radius or of the detected iris radius, so that irises from other near-infrared
cameras (smaller in the frame, heavier lashes) segment without retuning.
"""

from typing import Final

# --- input limits ---------------------------------------------------------------------------
#: Smallest and largest image side accepted, in pixels (checked before any allocation).
MIN_SIDE_PX: Final = 64
MAX_SIDE_PX: Final = 4096
#: Segmentation runs on a copy whose longer side is at most this (area-averaged down-scale), so
#: the cost is bounded whatever the sensor; rubber-sheet sampling reads the same copy.
WORK_MAX_SIDE_PX: Final = 480

# --- specular reflections -------------------------------------------------------------------
#: Structuring element of the white top-hat, as a fraction of the shorter image side.
REFLECTION_SIZE_FRAC: Final = 0.05
#: A reflection stands this far above its opened surroundings, as a fraction of the image's
#: 1st-99th percentile range.
REFLECTION_CONTRAST_FRAC: Final = 0.25
#: ... and is brighter than the median plus this share of the median-to-99.5th-percentile range.
REFLECTION_LEVEL_FRAC: Final = 0.6

# --- pupil ----------------------------------------------------------------------------------
#: Plausible pupil radius, as a fraction of the shorter image side (wide: close-up cameras show
#: a 45 %-of-height pupil, distant ones a 2 % one).
PUPIL_MIN_RADIUS_FRAC: Final = 0.02
PUPIL_MAX_RADIUS_FRAC: Final = 0.30
#: Grey closing that erases eyelashes before thresholding, as a fraction of the shorter side.
LASH_CLOSING_FRAC: Final = 0.025
#: Number of candidate dark thresholds tried between the darkest level and the median.
PUPIL_THRESHOLDS: Final = 10
#: Radial search band for the pupil edge, as fractions of the blob radius.
PUPIL_EDGE_BAND: Final = (0.6, 1.5)

# --- limbus ---------------------------------------------------------------------------------
#: Pupil-to-iris radius ratio range searched (ISO/IEC 29794-6 deems 0.2-0.7 acceptable; a
#: bright ring just outside the pupil makes a higher bound pick that ring instead).
PUPIL_IRIS_RATIO_RANGE: Final = (0.20, 0.70)
#: The limbus centre may sit this far from the pupil centre, as a fraction of the pupil radius
#: (pupils are typically nasal and inferior of the iris centre).
LIMBUS_OFFSET_FRAC: Final = 0.6
#: ... and at most this fraction of the limbus radius (decentration is below 10 % in practice).
LIMBUS_MAX_OFFSET_FRAC: Final = 0.15
#: The limbus circle must contain the pupil disc grown by this factor.
LIMBUS_PUPIL_CLEARANCE: Final = 1.3
#: Half-width of the angular sectors (either side of horizontal) where the limbus is searched,
#: radians: top and bottom are often under the eyelids.
LIMBUS_SECTOR_HALF_RAD: Final = 0.75
#: Lowering of the sectors' centre below horizontal, radians (the lower limbus is visible more
#: often than the upper).
LIMBUS_SECTOR_TILT_RAD: Final = 0.20

# --- eyelids -------------------------------------------------------------------------------
#: When the upper lid is found over the iris, the top sector where ``sin(angle)`` is below minus
#: this (+-60 degrees about straight up) is masked ...
UPPER_LID_SECTOR_SIN: Final = 0.5
#: ... beyond this fraction of the pupil-to-limbus band (the inner part is seldom covered).
UPPER_LID_INNER_T: Final = 0.2
#: The upper lid counts as present when more than this share of the outer top sector looks
#: unlike the iris (IITD: 10th percentile 0.23, median 0.72; an open synthetic eye 0.04-0.08).
UPPER_LID_TEST_SHARE: Final = 0.2

# --- rubber sheet and code ------------------------------------------------------------------
#: Polar image size: radial samples and angular samples (a multiple of the code's columns).
POLAR_RADIAL: Final = 48
POLAR_ANGULAR_PER_COLUMN: Final = 4
#: Part of the pupil-to-limbus band that is encoded (0 = pupil edge, 1 = limbus).
BAND_INNER: Final = 0.04
BAND_OUTER: Final = 0.86
#: Log-Gabor centre wavelength along the angle, in code columns, and bandwidth sigma/f0.
GABOR_WAVELENGTH_COLUMNS: Final = 12.0
GABOR_SIGMA_ON_F: Final = 0.5
#: Radial Gaussian smoothing of the filter response, as a fraction of the encoded band. Narrow
#: enough that the 8 rings are nearly independent (more degrees of freedom, a narrower impostor
#: distribution): 0.03-0.04 measured FNMR 0.63 % at FMR 1e-4 on IITD, 0.06 gave 0.84 %.
GABOR_RADIAL_SIGMA_FRAC: Final = 0.04
#: Fraction of each bit channel's valid samples with the smallest response magnitude that are
#: masked as fragile (K. Hollingsworth, K. Bowyer, P. Flynn, "The best bits in an iris code",
#: IEEE TPAMI 31(6), 2009).
FRAGILE_FRACTION: Final = 0.15
#: A code sample is valid when at least this share of its filter's support is unoccluded.
MIN_SUPPORT_VALID: Final = 0.8

# --- quality gates --------------------------------------------------------------------------
#: Refuse when fewer than this share of the code's bits is usable.
MIN_USABLE_BITS_FRACTION: Final = 0.20
#: Refuse when the focus score (0-100) is below this.
MIN_FOCUS: Final = 5.0
