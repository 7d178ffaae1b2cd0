"""Algorithm constants of the iris engine, with units and sources, in one place.

Deployment settings (thresholds for a target FMR/FPIR) are not here: they are measured and stored
with the configuration. These are properties of the algorithm.
"""

#: Daugman's reference number of mutually valid bits for score normalisation. A raw fractional
#: Hamming distance computed from n bits is rescaled as 0.5 - (0.5 - HD) * sqrt(n / 911), so that
#: comparisons made from few bits are pulled towards 0.5 (J. Daugman, "How iris recognition works",
#: IEEE TCSVT 14(1), 2004, section 4; 911 bits was the median in his database).
DAUGMAN_REFERENCE_BITS = 911

#: Smallest number of bits a single code may have unmasked to be accepted at all, and the smallest
#: overlap two codes must have at a rotation for that rotation to count. 2,048-bit codes with
#: 10-40 % occlusion keep 1,200-1,850 valid bits; below a few hundred the distance is noise.
DEFAULT_MIN_VALID_BITS = 256

#: Default rotation search, in angular columns each way (8 of 128 columns = +/-22.5 degrees).
DEFAULT_MAX_SHIFT_COLUMNS = 8

#: Impostor degrees of freedom Daugman measured for 2,048-bit codes (J. Daugman, "The importance of
#: being random", Pattern Recognition 36(2), 2003): the synthetic generator is calibrated to it.
DAUGMAN_IMPOSTOR_DOF = 249
