/* Per-scope statistics of one chunk in two passes over its frames (optional: scopestats.py has
 * a numpy implementation that gives the same stats and an equally valid set of kept IATs).
 *
 * scope_stats(scope, frame, ts, size, hints, nscopes, keep_std, keep_all, -- inputs (n frames)
 *             map, out, q, cut, kept)                            -- work and outputs
 *   scope  int64[n]  scope id of each frame, 0 <= id < nscopes, frames in frame order
 *   frame, ts, size int64[n]; hints int32[n] (OR-ed per scope)
 *   map    int64[nscopes]  work space (overwritten)
 *   out    int64[n * OUT_COLS]  one row per scope in order of first appearance:
 *          id, frames, bytes, first_frame, first_ts, last_frame, last_ts, n_iat, min, max,
 *          left_out, all_kept, hints, n_kept
 *   q      uint64[n * 3]  per scope the exact sum of squared IATs as 192 bits (lo, mid, hi)
 *   cut    float64[n]     work space
 *   kept   int64[n * 4]   rows (scope row, iat, frame, ts) of the IATs above the cut, grouped
 *                         by scope row, frame order within a scope
 * returns (scope rows, kept rows).
 *
 * Pass 1 accumulates the stats and float sums; the cut is the scope's chunk-local mean +
 * keep_std * std, or none for a scope of at most keep_all IATs (a few samples' mean and std
 * say little: with n IATs none lies more than (n - 1) / sqrt(n) std above their mean)
 * (only a filter: the largest IAT left out is reported, which keeps the outlier pass exact).
 * Pass 2 places the kept IATs by a counting sort on the scope row.
 *
 * Both functions refuse (ValueError) |ts| > 2^61 (scopestats.TS_LIMIT: every IAT then fits in
 * int64 with room to spare), scope ids outside [0, nscopes), sizes whose sum could pass int64,
 * misaligned or wrongly sized buffers, and outputs that share memory with another argument.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "_argcheck.h"

#ifndef __SIZEOF_INT128__
#error "a compiler with unsigned __int128 is needed (the build falls back to numpy without it)"
#endif

#define TS_LIMIT ((int64_t)1 << 61)


/* The per-frame arguments both functions index with or add up: every scope id in
 * [0, nscopes), every |ts| <= TS_LIMIT, and n * max |size| within int64 (a bound on any
 * scope's byte count). Both passes check each frame as they read it and stop at the first bad
 * one (byte counts add as unsigned until the size bound is known, so a refused chunk never
 * overflows): a separate pass over three columns of a 2M-frame chunk cost series() 10% in
 * memory traffic, the check inside the pass is within the noise (A/B on 2M frames). */
static inline int frame_ok(int64_t scope, int64_t ts, Py_ssize_t nscopes) {
    /* & rather than &&: one branch per frame instead of two, 3-5% of scope_stats */
    return ((uint64_t)scope < (uint64_t)nscopes) &
           ((uint64_t)ts + (uint64_t)TS_LIMIT <= 2 * (uint64_t)TS_LIMIT);
}

static inline uint64_t max_abs(uint64_t big, int64_t z) {
    uint64_t a = z < 0 ? (uint64_t)0 - (uint64_t)z : (uint64_t)z;
    return a > big ? a : big;
}

static inline int sizes_ok(uint64_t big, Py_ssize_t n) {
    return n == 0 || big <= (uint64_t)INT64_MAX / (uint64_t)n;
}

/* The ValueError for frames a pass refused: the first bad one by name. */
static void report_frames(const char *fn, const int64_t *scope, const int64_t *ts,
                          const int64_t *size, Py_ssize_t n, Py_ssize_t nscopes) {
    uint64_t big = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (scope[i] < 0 || scope[i] >= nscopes) {
            PyErr_Format(PyExc_ValueError, "%s: scope id %lld of frame %zd is outside [0, %zd)",
                         fn, (long long)scope[i], i, nscopes);
            return;
        }
        if (ts[i] > TS_LIMIT || ts[i] < -TS_LIMIT) {
            PyErr_Format(PyExc_ValueError, "%s: timestamp %lld of frame %zd is beyond +-2^61",
                         fn, (long long)ts[i], i);
            return;
        }
        uint64_t z = size[i] < 0 ? (uint64_t)0 - (uint64_t)size[i] : (uint64_t)size[i];
        big = z > big ? z : big;
    }
    PyErr_Format(PyExc_ValueError, "%s: sizes up to %llu in %zd frames could pass int64", fn,
                 (unsigned long long)big, n);
}

/* nscopes sizes work buffers of nscopes * 92 int64: a larger count is no buffer's length,
 * and checking it first keeps those products from overflowing */
#define MAX_SCOPES (PY_SSIZE_T_MAX / (92 * 8))

enum { ID, FRAMES, BYTES, FIRST_FRAME, FIRST_TS, LAST_FRAME, LAST_TS, N_IAT, MIN, MAX, LEFT_OUT,
       ALL_KEPT, HINTS, N_KEPT, OUT_COLS };

static PyObject *scope_stats(PyObject *self, PyObject *args) {
    Py_buffer b[10];
    Py_ssize_t nscopes;
    double keep_std;
    Py_ssize_t keep_all;
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*ndnw*w*w*w*w*", &b[0], &b[1], &b[2], &b[3], &b[4],
                          &nscopes, &keep_std, &keep_all, &b[5], &b[6], &b[7], &b[8], &b[9]))
        return NULL;
    PyObject *result = NULL;
    const arg_t args_[10] = {
        {&b[0], "scope", 8, 0}, {&b[1], "frame", 8, 0}, {&b[2], "ts", 8, 0},
        {&b[3], "size", 8, 0}, {&b[4], "hints", 4, 0}, {&b[5], "map", 8, 1},
        {&b[6], "out", 8, 1}, {&b[7], "q", 8, 1}, {&b[8], "cut", 8, 1}, {&b[9], "kept", 8, 1}};
    if (nscopes < 0 || nscopes > MAX_SCOPES) {
        PyErr_Format(PyExc_ValueError, "scope_stats: nscopes %zd is outside [0, %zd]", nscopes,
                     (Py_ssize_t)MAX_SCOPES);
        goto done;
    }
    if (check_args("scope_stats", args_, 10) < 0)
        goto done;
    Py_ssize_t n = b[0].len / 8;
    const Py_ssize_t want[10] = {n * 8, n * 8, n * 8, n * 8, n * 4, nscopes * 8,
                                 n * OUT_COLS * 8, n * 3 * 8, n * 8, n * 4 * 8};
    for (int k = 0; k < 10; k++) {
        if (b[k].len != want[k]) {
            PyErr_Format(PyExc_ValueError, "scope_stats: %s has %zd bytes, not %zd",
                         args_[k].name, b[k].len, want[k]);
            goto done;
        }
    }
    const int64_t *scope = b[0].buf, *frame = b[1].buf, *ts = b[2].buf, *size = b[3].buf;
    const int32_t *hints = b[4].buf;
    int64_t *map = b[5].buf, *out = b[6].buf, *kept = b[9].buf;
    uint64_t *q = b[7].buf;
    double *cut = b[8].buf;
    int64_t rows = 0, nkept = 0;
    double *fsum = PyMem_Calloc((size_t)(n ? n : 1), 2 * sizeof(double));
    int64_t *pos = PyMem_Calloc((size_t)(n ? n : 1), 3 * sizeof(int64_t));
    if (fsum == NULL || pos == NULL) {
        PyMem_Free(fsum);
        PyMem_Free(pos);
        PyErr_NoMemory();
        goto done;
    }
    int64_t *prev = pos + (n ? n : 1), *first_i = prev + (n ? n : 1);
    uint64_t big = 0;
    int bad = 0;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < nscopes; s++)
        map[s] = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        big = max_abs(big, size[i]);
        if (!frame_ok(scope[i], ts[i], nscopes)) {
            bad = 1;
            break;
        }
        int64_t r = map[scope[i]];
        if (r < 0) {
            r = map[scope[i]] = rows++;
            first_i[r] = i;
            int64_t *o = out + r * OUT_COLS;
            o[ID] = scope[i];
            o[FRAMES] = 1;
            o[BYTES] = size[i];
            o[FIRST_FRAME] = o[LAST_FRAME] = frame[i];
            o[FIRST_TS] = o[LAST_TS] = ts[i];
            o[N_IAT] = o[MIN] = o[MAX] = o[LEFT_OUT] = o[N_KEPT] = 0;
            o[ALL_KEPT] = 1;
            o[HINTS] = hints[i];
            q[3 * r] = q[3 * r + 1] = q[3 * r + 2] = 0;
            continue;
        }
        int64_t *o = out + r * OUT_COLS;
        int64_t iat = ts[i] - o[LAST_TS];
        o[FRAMES]++;
        o[BYTES] = (int64_t)((uint64_t)o[BYTES] + (uint64_t)size[i]);
        o[LAST_FRAME] = frame[i];
        o[LAST_TS] = ts[i];
        if (o[N_IAT] == 0 || iat < o[MIN])
            o[MIN] = iat;
        if (o[N_IAT] == 0 || iat > o[MAX])
            o[MAX] = iat;
        o[N_IAT]++;
        o[HINTS] |= hints[i];
        /* |iat| < 2^63, so its square fits in 128 bits; carries go to the third word */
        uint64_t a = iat < 0 ? (uint64_t)0 - (uint64_t)iat : (uint64_t)iat;
        unsigned __int128 sq = (unsigned __int128)a * a;
        unsigned __int128 low = ((unsigned __int128)q[3 * r + 1] << 64 | q[3 * r]) + sq;
        if (low < sq)
            q[3 * r + 2]++;
        q[3 * r] = (uint64_t)low;
        q[3 * r + 1] = (uint64_t)(low >> 64);
        double x = (double)iat;
        fsum[2 * r] += x;
        fsum[2 * r + 1] += x * x;
    }
    bad |= !sizes_ok(big, n);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *o = out + r * OUT_COLS;
        cut[r] = INFINITY;
        if (o[N_IAT] > 0 && o[N_IAT] <= keep_all) {
            cut[r] = -INFINITY;
        } else if (o[N_IAT] > 0) {
            double m = (double)o[N_IAT], mean = fsum[2 * r] / m;
            double var = fsum[2 * r + 1] / m - mean * mean;
            cut[r] = mean + keep_std * sqrt(var > 0 ? var : 0.0);
        }
        prev[r] = o[FIRST_TS];
    }
    /* pass 2a: count kept IATs per scope and find the largest one left out */
    for (Py_ssize_t i = 0; i < n && !bad; i++) {
        int64_t r = map[scope[i]];
        int64_t *o = out + r * OUT_COLS;
        if (i == first_i[r])
            continue;
        int64_t iat = ts[i] - prev[r];
        prev[r] = ts[i];
        if ((double)iat > cut[r]) {
            o[N_KEPT]++;
        } else if (o[ALL_KEPT] || iat > o[LEFT_OUT]) {
            o[LEFT_OUT] = iat;
            o[ALL_KEPT] = 0;
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        const int64_t *o = out + r * OUT_COLS;
        pos[r] = nkept;
        nkept += o[N_KEPT];
        prev[r] = o[FIRST_TS];
    }
    /* pass 2b: place them */
    for (Py_ssize_t i = 0; i < n && !bad; i++) {
        int64_t r = map[scope[i]];
        if (i == first_i[r])
            continue;
        int64_t iat = ts[i] - prev[r];
        prev[r] = ts[i];
        if ((double)iat > cut[r]) {
            int64_t *k = kept + 4 * pos[r]++;
            k[0] = r;
            k[1] = iat;
            k[2] = frame[i];
            k[3] = ts[i];
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(fsum);
    PyMem_Free(pos);
    if (bad)
        report_frames("scope_stats", scope, ts, size, n, nscopes);
    else
        result = Py_BuildValue("(LL)", (long long)rows, (long long)nkept);
done:
    for (int k = 0; k < 10; k++)
        PyBuffer_Release(&b[k]);
    return result;
}


/* series(scope, ts, size, nscopes, bin_ns, edges, cur, rows, hist) -> rows written, or -2
 *   scope  int64[n]  dense scope index 0 <= s < nscopes of each frame, frames in frame order
 *   ts, size int64[n] (|ts| <= 2^61); edges int64[91] (series.EDGES: positive, ascending)
 *   cur    int64[nscopes]  work space (overwritten)
 *   rows   int64[cap * SERIES_COLS]  out (cap <= n rows; -2 when more are needed): scope, bin, frames, bytes, n, sum, min, max, sumsq hi,
 *          sumsq lo (value = hi * 2^62 + lo), one row per run of a scope's frames in one time
 *          bin, in order of creation: a scope whose times go back to an earlier bin gets a
 *          second row for it, which the caller merges after sorting
 *   hist   int64[nscopes * 92]  out (zeroed by the caller): IAT counts per scope and log bin
 * A row whose sum of squares reaches Q_LIMIT = 2^124 gets -1 in both columns (series.LOST).
 * The histogram bin of an IAT x starts from the bin of 2^(bit length of x - 1) (a table of 64)
 * and moves up at most 4 edges (an octave spans 3.01 bins of ten per decade).
 * The series of docs/SERIES.md in one pass, without sorting (series.chunk_series). */
enum { S_SCOPE, S_BIN, S_FRAMES, S_BYTES, S_N, S_SUM, S_MIN, S_MAX, S_QH, S_QL, SERIES_COLS };
#define HIST_BINS 92
#define Q_LIMIT ((unsigned __int128)1 << 124)

static PyObject *series(PyObject *self, PyObject *args) {
    Py_buffer b[7];
    Py_ssize_t nscopes;
    long long bin_ns;
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*nLy*w*w*w*", &b[0], &b[1], &b[2], &nscopes, &bin_ns,
                          &b[3], &b[4], &b[5], &b[6]))
        return NULL;
    PyObject *result = NULL;
    const arg_t args_[7] = {{&b[0], "scope", 8, 0}, {&b[1], "ts", 8, 0}, {&b[2], "size", 8, 0},
                            {&b[3], "edges", 8, 0}, {&b[4], "cur", 8, 1},
                            {&b[5], "rows", SERIES_COLS * 8, 1}, {&b[6], "hist", 8, 1}};
    if (nscopes < 0 || nscopes > MAX_SCOPES) {
        PyErr_Format(PyExc_ValueError, "series: nscopes %zd is outside [0, %zd]", nscopes,
                     (Py_ssize_t)MAX_SCOPES);
        goto done;
    }
    if (bin_ns <= 0) {
        PyErr_Format(PyExc_ValueError, "series: bin_ns %lld is not positive", bin_ns);
        goto done;
    }
    if (check_args("series", args_, 7) < 0)
        goto done;
    Py_ssize_t n = b[0].len / 8;
    Py_ssize_t cap = b[5].len / (SERIES_COLS * 8);
    if (cap > n) {
        PyErr_Format(PyExc_ValueError, "series: rows has room for %zd rows, more than the %zd "
                     "frames", cap, n);
        goto done;
    }
    const Py_ssize_t want[7] = {n * 8, n * 8, n * 8, 91 * 8, nscopes * 8,
                                cap * SERIES_COLS * 8, nscopes * HIST_BINS * 8};
    for (int k = 0; k < 7; k++) {
        if (b[k].len != want[k]) {
            PyErr_Format(PyExc_ValueError, "series: %s has %zd bytes, not %zd", args_[k].name,
                         b[k].len, want[k]);
            goto done;
        }
    }
    const int64_t *scope = b[0].buf, *ts = b[1].buf, *size = b[2].buf, *edges = b[3].buf;
    int64_t *cur = b[4].buf, *rows = b[5].buf, *hist = b[6].buf;
    /* start[] below reads the edges as unsigned and the bin search assumes them sorted */
    for (int k = 0; k < 91; k++) {
        if (edges[k] <= 0 || (k > 0 && edges[k] <= edges[k - 1])) {
            PyErr_SetString(PyExc_ValueError, "series: edges are not positive and ascending");
            goto done;
        }
    }
    unsigned __int128 *q = PyMem_Malloc((cap ? cap : 1) * sizeof *q);
    /* [lo, hi) of each scope's current bin: most frames fall in it, no division needed */
    int64_t *bounds = PyMem_Malloc((nscopes ? nscopes : 1) * 2 * sizeof *bounds);
    if (q == NULL || bounds == NULL) {
        PyMem_Free(q);
        PyMem_Free(bounds);
        PyErr_NoMemory();
        goto done;
    }
    const int fast_bins = bin_ns <= ((int64_t)1 << 61);  /* lo + bin_ns cannot overflow */
    Py_ssize_t nrows = 0;
    int full = 0;
    int start[65];  /* start[L]: edges <= 2^(L-1), the first candidate bin of bit length L */
    start[0] = 0;
    for (int L = 1; L <= 64; L++) {
        uint64_t low = (uint64_t)1 << (L - 1);
        int k = 0;
        while (k < 91 && (uint64_t)edges[k] <= low)
            k++;
        start[L] = k;
    }
    uint64_t big = 0;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < nscopes; s++)
        cur[s] = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t s = scope[i], t = ts[i];
        big = max_abs(big, size[i]);
        if (!frame_ok(s, t, nscopes)) {
            bad = 1;
            break;
        }
        int64_t r = cur[s];
        int has_prev = r >= 0;
        if (r < 0 || t < bounds[2 * s] || t >= bounds[2 * s + 1]) {
            int64_t bin = t / bin_ns;
            if (t % bin_ns != 0 && t < 0)
                bin -= 1;  /* floor, as Python's // */
            if (fast_bins) {
                bounds[2 * s] = bin * bin_ns;
                bounds[2 * s + 1] = bin * bin_ns + bin_ns;
            } else {
                bounds[2 * s] = 1;  /* empty: always divide */
                bounds[2 * s + 1] = 0;
            }
            if (r >= 0 && rows[r * SERIES_COLS + S_BIN] == bin)
                goto same_row;
            if (nrows == cap) {
                full = 1;
                break;
            }
            int64_t *row = rows + nrows * SERIES_COLS;
            row[S_SCOPE] = s;
            row[S_BIN] = bin;
            row[S_FRAMES] = row[S_BYTES] = row[S_N] = row[S_SUM] = 0;
            row[S_MIN] = INT64_MAX;
            row[S_MAX] = INT64_MIN;
            q[nrows] = 0;
            /* the previous frame's time travels with the scope, not the row */
            row[S_QH] = r >= 0 ? rows[r * SERIES_COLS + S_QH] : 0;
            cur[s] = r = nrows++;
        }
    same_row:;
        int64_t *row = rows + r * SERIES_COLS;
        row[S_FRAMES] += 1;
        row[S_BYTES] = (int64_t)((uint64_t)row[S_BYTES] + (uint64_t)size[i]);
        if (has_prev) {
            int64_t iat = t - row[S_QH];
            row[S_N] += 1;
            row[S_SUM] += iat;
            if (iat < row[S_MIN])
                row[S_MIN] = iat;
            if (iat > row[S_MAX])
                row[S_MAX] = iat;
            uint64_t a = (uint64_t)(iat < 0 ? -iat : iat);
            unsigned __int128 sq = (unsigned __int128)a * a;
            q[r] = q[r] + sq < q[r] ? Q_LIMIT : q[r] + sq;  /* saturate: it only tells LOST */
            int k = 0;  /* how many edges are <= iat */
            if (iat > 0) {
                k = start[64 - __builtin_clzll((uint64_t)iat)];
                while (k < 91 && edges[k] <= iat)
                    k++;
            }
            hist[s * HIST_BINS + k] += 1;
        }
        row[S_QH] = t;  /* S_QH holds the scope's last time until the end */
    }
    bad |= !sizes_ok(big, n);
    for (Py_ssize_t r = 0; r < nrows; r++) {
        int64_t *row = rows + r * SERIES_COLS;
        if (q[r] >= Q_LIMIT) {
            row[S_QH] = row[S_QL] = -1;  /* series.LOST */
            continue;
        }
        row[S_QH] = (int64_t)(q[r] >> 62);
        row[S_QL] = (int64_t)(q[r] & (((unsigned __int128)1 << 62) - 1));
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(q);
    PyMem_Free(bounds);
    if (bad)
        report_frames("series", scope, ts, size, n, nscopes);
    else
        result = PyLong_FromSsize_t(full ? -2 : nrows);
done:
    for (int k = 0; k < 7; k++)
        PyBuffer_Release(&b[k]);
    return result;
}

static PyMethodDef methods[] = {
    {"scope_stats", scope_stats, METH_VARARGS,
     "scope_stats(scope, frame, ts, size, hints, nscopes, keep_std, keep_all, map, out, q, cut, "
     "kept) -> "
     "(scope rows, kept rows)"},
    {"series", series, METH_VARARGS,
     "series(scope, ts, size, nscopes, bin_ns, edges, cur, rows, hist) -> rows or -2"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scopes", NULL, -1, methods};

PyMODINIT_FUNC PyInit__scopes(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && (PyModule_AddIntConstant(m, "OUT_COLS", OUT_COLS) < 0 ||
                      PyModule_AddIntConstant(m, "SERIES_COLS", SERIES_COLS) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
