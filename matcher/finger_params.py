"""Algorithm constants of the fingerprint matcher, with units and sources, in one place.

The matcher is in the Minutia Cylinder-Code family: R. Cappelli, M. Ferrara, D. Maltoni,
"Minutia Cylinder-Code: a new representation and matching technique for fingerprint
recognition", IEEE TPAMI 32(12):2128-2141, 2010 (below: "MCC"). Distances are pixels at 500 dpi;
templates at other resolutions are rescaled before cylinders are built.
"""

import math

#: Resolution every length below refers to.
REFERENCE_DPI = 500

# ------------------------------------------------------------------------------- cylinders
#: Cylinder radius (MCC: R = 70 px).
CYLINDER_RADIUS_PX = 70.0
#: Spatial cells per side. 8 (not MCC's 16) so that one angular section of a cylinder is exactly
#: one 64-bit word and the validity mask is one word: a cylinder is 6 + 1 words, 56 bytes, and a
#: local similarity is a handful of word operations.
CYLINDER_CELLS_PER_SIDE = 8
#: Angular sections (MCC: N_D = 6).
CYLINDER_SECTIONS = 6
#: Spatial Gaussian sigma (MCC: 28/3 px); neighbours farther than 3 sigma from a cell are ignored.
SPATIAL_SIGMA_PX = 28.0 / 3.0
#: Directional Gaussian sigma (MCC: 2*pi/9 = 0.70 rad). With 8 x 8 cells each cell is twice as
#: wide as MCC's, so a cell gathers more neighbours: a narrower directional window keeps the
#: sections distinct. 0.5 rad sits in the middle of a plateau (0.45-0.55) measured on FVC2002
#: DB1_B and DB3_B mindtct minutiae (EER 2.9 % / 6.4 % against 3.2 % / 8.9 % with MCC's values).
DIRECTIONAL_SIGMA_RAD = 0.5
#: A cell's bit is set when its summed contribution reaches this (MCC's mu_Psi for the bit form:
#: 0.01). Lower, so that a neighbour a few pixels off still lights the cell: binary cylinders are
#: otherwise brittle under the position noise of real extraction (same measurement as above).
CELL_ON_THRESHOLD = 0.005
#: Cells farther than this outside the convex hull of all minutiae are invalid (MCC: Omega = 50).
HULL_MARGIN_PX = 50.0
#: A cylinder is kept only with at least this fraction of its in-radius cells valid (MCC: 0.75)
MIN_VALID_CELL_FRACTION = 0.75
#: ... and at least this many neighbouring minutiae within R + 3 sigma (MCC: min_M = 2).
MIN_NEIGHBOURS = 2

# ------------------------------------------------------------------------- local matching
#: Two cylinders are compared only if their minutiae directions differ by at most this
#: (MCC: delta_theta = pi/2). pi/3: a print turns far less than that between impressions, and
#: a cylinder compared with one turned 60-90 degrees from it is a look-alike at best (FVC2002
#: DB1_B / DB3_B mindtct minutiae: EER 1.43 / 4.29 % at pi/2, 1.22 / 3.93 % at pi/3 and at
#: 5 pi/16, 1.94 / 5.36 % at pi/4); a third fewer cylinder pairs to compare.
MAX_DIRECTION_DIFF_RAD = math.pi / 3.0
#: ... and their common valid cells are at least this fraction of a full disc (MCC: min_ME 0.6).
MIN_MATCHABLE_CELL_FRACTION = 0.6

# --------------------------------------------------------------------------- consolidation
#: Candidate pairs are every minutia's best partner on the other side (row and column maxima of
#: the local similarity matrix); greedy one-to-one assignment over them, best first, keeps at most
#: this many for relaxation (its cost grows with the square). MCC takes the global top n_R
#: instead; best partners with 40 pairs measured EER 2.1 % / 6.1 % on FVC2002 DB1_B / DB3_B
#: mindtct minutiae against 2.9 % / 6.1 % for a global top 48 with 24 pairs (before the
#: geometric check). With the check and the pi/3 window: 30 pairs 1.43 / 4.29 %, 40 pairs
#: 1.22 / 3.93 %, 24 pairs 1.79 / 4.64 %; 30 for a little more than half the consolidation
#: cost of 40 (it grows with the square), which lets an exhaustive search reach 100k matches
#: a second on one core.
RELAXATION_PAIRS = 30
#: Number of pairs averaged into the score: between these, growing with the smaller minutiae
#: count (MCC: n_P from min_NP = 4 to max_NP = 12 through a sigmoid).
MIN_SCORED_PAIRS = 4
MAX_SCORED_PAIRS = 12
SCORED_PAIRS_SIGMOID_MU = 20.0
SCORED_PAIRS_SIGMOID_TAU = 0.4
#: Relaxation (MCC's LSS-R): iterations, weight of the previous value, and the sigmoids that make
#: two pairs compatible: distance difference (px), direction difference and radial angle
#: difference (rad).
RELAXATION_ITERATIONS = 5
RELAXATION_WEIGHT = 0.5
COMPAT_DISTANCE_MU_PX = 5.0
COMPAT_DISTANCE_TAU = -8.0 / 5.0
COMPAT_DIRECTION_MU_RAD = math.pi / 12.0
COMPAT_DIRECTION_TAU = -30.0
COMPAT_RADIAL_MU_RAD = math.pi / 12.0
COMPAT_RADIAL_TAU = -30.0

# ---------------------------------------------------------------------- geometric check
#: After relaxation the score is weighed by a global check of the alignment (the issue's
#: "geometric verification of the top pairs"; cf. the pairing stage of Bozorth-type matchers
#: and of SourceAFIS). Each of the most efficient relaxed pairs proposes a rigid transform (its
#: rotation and translation); under each, every minutia of A takes the nearest free minutia of B
#: within a distance and direction tolerance. The transform pairing the most minutiae wins.
#: Measured on FVC2002 DB1_B / DB3_B mindtct minutiae: EER 2.14 % / 6.07 % without the check,
#: 1.43 % / 4.29 % with it (3 to 8 hypotheses, 25-30 px overlap, weight 2-3 all within 0.35 %;
#: 2 hypotheses 2.14 % / 5.36 %). It costs about 6 us a match (3 x na x nb distance tests).
GEOMETRIC_HYPOTHESES = 3
#: Tolerances of a paired minutia after alignment (px; rad).
GEOMETRIC_DISTANCE_PX = 15.0
GEOMETRIC_DIRECTION_RAD = 0.4
#: A minutia is in the common area when a minutia of the other template lies this close to it
#: after alignment: the denominator of the paired share counts only those (small sensors
#: overlap in part, so unpaired minutiae outside the common area say nothing).
GEOMETRIC_OVERLAP_PX = 30.0
#: Common-area counts below this are taken as this: a handful of paired minutiae in a tiny
#: overlap is not evidence of a mate.
GEOMETRIC_MIN_OVERLAP = 6
#: The paired share ``g = n^2 / (n_A n_B)`` (in [0, 1]) weighs the MCC score ``s`` as
#: ``s (1 + w g) / (1 + w)``: never above ``s``, so an upper bound of ``s`` bounds the score.
GEOMETRIC_WEIGHT = 3.0
