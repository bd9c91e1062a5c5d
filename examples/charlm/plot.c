/* examples/charlm/plot.c: a self-contained SVG of the training and validation loss curves. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/charlm/charlm.h"

#define W 800.0
#define H 480.0
#define ML 80.0 /* margins: left, right, top, bottom */
#define MR 30.0
#define MT 50.0
#define MB 60.0
#define MAX_POINTS 800

/* A "nice" tick spacing (1, 2 or 5 times a power of ten) giving about n ticks over span. */
static double nice_step(double span, int n)
{
    if (!(span > 0))
        return 1.0;
    double raw = span / n;
    double p = pow(10.0, floor(log10(raw)));
    double f = raw / p;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * p;
}

typedef struct frame {
    double x0, x1, y0, y1;   /* the plotted ranges                 */
    double xstep, ystep;     /* their tick spacings                */
} frame;

static double px(const frame *fr, double x)
{
    return ML + (x - fr->x0) / (fr->x1 - fr->x0) * (W - ML - MR);
}

static double py(const frame *fr, double y)
{
    return H - MB - (y - fr->y0) / (fr->y1 - fr->y0) * (H - MT - MB);
}

/* Escapes &, <, > and quotes for SVG text. */
static void put_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* The training curve averaged into buckets of `bucket` steps (non-finite losses skipped):
   (xs, ys) receive the points; returns their count. */
static int64_t bucket_curve(const float *loss, int64_t n_loss, int64_t first_step,
                            int64_t bucket, double *xs, double *ys)
{
    int64_t np = n_loss > 0 ? (n_loss + bucket - 1) / bucket : 0;
    int64_t kept = 0;
    for (int64_t b = 0; b < np; b++) {
        double sum = 0, xsum = 0;
        int64_t cnt = 0;
        for (int64_t i = b * bucket; i < n_loss && i < (b + 1) * bucket; i++) {
            if (isfinite(loss[i])) {
                sum += loss[i];
                xsum += (double)(first_step + i);
                cnt++;
            }
        }
        if (cnt) {
            xs[kept] = xsum / (double)cnt;
            ys[kept] = sum / (double)cnt;
            kept++;
        }
    }
    return kept;
}

/* The axes' ranges: every point of both curves, rounded out to tick steps. */
static frame fit_frame(const double *ys, int64_t kept, int64_t n_loss, int64_t first_step,
                       const int64_t *val_step, const double *val_loss, int64_t n_val)
{
    frame fr = {first_step, first_step + (n_loss > 1 ? n_loss - 1 : 1), INFINITY, -INFINITY, 1, 1};
    for (int64_t i = 0; i < kept; i++) {
        fr.y0 = fmin(fr.y0, ys[i]);
        fr.y1 = fmax(fr.y1, ys[i]);
    }
    for (int64_t i = 0; i < n_val; i++) {
        if (!isfinite(val_loss[i]))
            continue;
        fr.y0 = fmin(fr.y0, val_loss[i]);
        fr.y1 = fmax(fr.y1, val_loss[i]);
        fr.x1 = fmax(fr.x1, (double)val_step[i]);
    }
    if (!isfinite(fr.y0)) {
        fr.y0 = 0;
        fr.y1 = 1;
    }
    if (fr.y1 - fr.y0 < 1e-9) {
        fr.y0 -= 0.5;
        fr.y1 += 0.5;
    }
    fr.ystep = nice_step(fr.y1 - fr.y0, 6);
    fr.y0 = floor(fr.y0 / fr.ystep) * fr.ystep;
    fr.y1 = ceil(fr.y1 / fr.ystep) * fr.ystep;
    if (fr.x1 <= fr.x0)
        fr.x1 = fr.x0 + 1;
    fr.xstep = nice_step(fr.x1 - fr.x0, 8);
    return fr;
}

/* Grid, ticks, tick labels, axes and their labels. */
static void write_axes(FILE *f, const frame *fr)
{
    double ystep = fr->ystep, xstep = fr->xstep;
    /* grid, ticks and tick labels */
    fprintf(f, "<g stroke=\"#dddddd\" stroke-width=\"1\">\n");
    for (double y = fr->y0; y <= fr->y1 + ystep * 1e-6; y += ystep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", ML, py(fr, y),
                W - MR, py(fr, y));
    double xfirst = ceil(fr->x0 / xstep) * xstep;
    for (double x = xfirst; x <= fr->x1 + xstep * 1e-6; x += xstep)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", px(fr, x), MT,
                px(fr, x), H - MB);
    fprintf(f, "</g>\n<g fill=\"#333333\">\n");
    for (double y = fr->y0; y <= fr->y1 + ystep * 1e-6; y += ystep)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 8,
                py(fr, y) + 4, fabs(y) < ystep * 1e-6 ? 0.0 : y);
    for (double x = xfirst; x <= fr->x1 + xstep * 1e-6; x += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>\n",
                px(fr, x), H - MB + 20, x);
    fprintf(f, "</g>\n");
    /* axes and their labels */
    fprintf(f, "<g stroke=\"#333333\" stroke-width=\"1.5\">\n"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n"
               "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n</g>\n",
            ML, H - MB, W - MR, H - MB, ML, MT, ML, H - MB);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n",
            (ML + W - MR) / 2, H - 15);
    fprintf(f, "<text x=\"20\" y=\"%.1f\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 20 %.1f)\">loss (nats/char)</text>\n",
            (MT + H - MB) / 2, (MT + H - MB) / 2);
}

/* The training polyline and the validation points. */
static void write_curves(FILE *f, const frame *fr, const double *xs, const double *ys,
                         int64_t kept, const int64_t *val_step, const double *val_loss,
                         int64_t n_val)
{
    if (kept > 0) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" "
                   "points=\"");
        for (int64_t i = 0; i < kept; i++)
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", px(fr, xs[i]), py(fr, ys[i]));
        fprintf(f, "\"/>\n");
    }
    int64_t nv = 0;
    for (int64_t i = 0; i < n_val; i++)
        nv += isfinite(val_loss[i]) ? 1 : 0;
    if (nv > 0) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" points=\"");
        int64_t k = 0;
        for (int64_t i = 0; i < n_val; i++)
            if (isfinite(val_loss[i]))
                fprintf(f, "%s%.1f,%.1f", k++ ? " " : "", px(fr, (double)val_step[i]),
                        py(fr, val_loss[i]));
        fprintf(f, "\"/>\n<g fill=\"#ff7f0e\">\n");
        for (int64_t i = 0; i < n_val; i++)
            if (isfinite(val_loss[i]))
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"><title>step %lld: "
                           "%.4f</title></circle>\n",
                        px(fr, (double)val_step[i]), py(fr, val_loss[i]),
                        (long long)val_step[i], val_loss[i]);
        fprintf(f, "</g>\n");
    }
}

static void write_legend(FILE *f, bool averaged)
{
    double lx = W - MR - 190, ly = MT + 10;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"180\" height=\"48\" fill=\"white\" "
               "stroke=\"#cccccc\"/>\n", lx, ly);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" "
               "stroke-width=\"2\"/>\n<text x=\"%.1f\" y=\"%.1f\">training%s</text>\n",
            lx + 10, ly + 16, lx + 40, ly + 16, lx + 48, ly + 20,
            averaged ? " (averaged)" : "");
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ff7f0e\" "
               "stroke-width=\"2\"/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
               "fill=\"#ff7f0e\"/>\n<text x=\"%.1f\" y=\"%.1f\">validation</text>\n",
            lx + 10, ly + 36, lx + 40, ly + 36, lx + 25, ly + 36, lx + 48, ly + 40);
}

int plot_write_svg(const char *path, const float *loss, int64_t n_loss, int64_t first_step,
                   const int64_t *val_step, const double *val_loss, int64_t n_val,
                   const char *title, char *err, size_t errsize)
{
    /* the training curve, averaged into at most MAX_POINTS buckets */
    int64_t bucket = n_loss > MAX_POINTS ? (n_loss + MAX_POINTS - 1) / MAX_POINTS : 1;
    int64_t np = n_loss > 0 ? (n_loss + bucket - 1) / bucket : 0;
    double *xs = malloc(((size_t)np + 1) * sizeof *xs);
    double *ys = malloc(((size_t)np + 1) * sizeof *ys);
    FILE *f = xs && ys ? fopen(path, "w") : NULL;
    if (!f) {
        if (xs && ys)
            snprintf(err, errsize, "cannot write '%s': %s", path, strerror(errno));
        else
            snprintf(err, errsize, "out of memory plotting");
        free(xs);
        free(ys);
        return EXIT_RUNTIME;
    }
    int64_t kept = bucket_curve(loss, n_loss, first_step, bucket, xs, ys);
    frame fr = fit_frame(ys, kept, n_loss, first_step, val_step, val_loss, n_val);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"13\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
               W, H, W, H);
    fprintf(f, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", W / 2);
    put_text(f, title);
    fprintf(f, "</text>\n");
    write_axes(f, &fr);
    write_curves(f, &fr, xs, ys, kept, val_step, val_loss, n_val);
    write_legend(f, bucket > 1);
    fprintf(f, "</svg>\n");
    free(xs);
    free(ys);
    if (ferror(f) | (fclose(f) != 0)) {
        snprintf(err, errsize, "cannot write '%s': %s", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}
