/* The stream parts of a chunk's Partial in one compiled pass over its messages (optional:
 * streamchunk.py computes the same with numpy; tests/test_speed_streams.py holds the two
 * equal).
 *
 * accumulate(flow, frame, ts, ftype,                               -- per frame
 *            row, proto, id1, id2, id3, id4, seq, bits, size, state, error, segment,
 *            keep_std, keep_all) -> (streams, q, kept, runs) as bytes, or None
 *   flow int32[f] (>= 0 for every frame with messages), frame and ts int64[f], ftype int16[f];
 *   the message columns int64[n] in message order (streams.MESSAGE_COLUMNS).
 *   streams  int64[k * SCOLS], one row per stream in order of first appearance (its id):
 *            the first message, the counter id (counters numbered in order of their first
 *            stream; a Chapter 10 channel's data types share one), the IAT stats and kept-IAT
 *            summary of scopestats over the stream's messages, and the counters of
 *            seqstate.py (IENA status and frame types over IENA messages only; types as a
 *            bit mask of frame type codes < 63), and the stream's IENA messages
 *   q        uint64[k * 3]  the exact sum of squared IATs per stream (lo, mid, hi words)
 *   kept     int64[* 4]     (stream, iat, frame, ts) of the IATs above the stream's chunk-local
 *                           mean + keep_std * std, by stream, message order within one
 *   runs     int64[* 4]     (counter, first message, last message, messages) of the runs of
 *                           +1 sequence steps (mod 2^bits) of each counter's messages but
 *                           segment continuations, by counter, message order within one
 *   None when a timestamp exceeds TS_LIMIT: int64 IATs could overflow (the caller then
 *   takes the exact per-message path).
 *   Raises IndexError for a message row outside the frames or in no flow, or an IENA
 *   message's frame type outside [0, MAX_TYPES); ValueError for a sequence width outside
 *   [0, 32], sizes whose sum could pass int64, or misaligned or wrongly sized columns. All of
 *   it is checked before the first message is accumulated, so the answer never depends on
 *   where in the chunk the bad value sits.
 *
 * Everything is accumulated in message order: per-stream state is small and stays in cache,
 * where a walk in stream order would miss on nearly every message of interleaved streams.
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

enum { ROW, PROTO, ID1, ID2, ID3, ID4, SEQ, BITS, SIZE, STATE, ERROR, SEGMENT, NIN };
enum { FIRST_MSG, COUNTER, FRAMES, BYTES, FIRST_FRAME, FIRST_TS, LAST_FRAME, LAST_TS, N_IAT,
       MIN, MAX, LEFT_OUT, ALL_KEPT, N_KEPT, ERRORS, SEGMENTS, NUMBERED, CHANGES, STATUS_FIRST,
       STATUS_LAST, TYPES, IENA_MSGS, SCOLS };
#define CH10 1 /* streams.PROTOCOLS */
#define IENA 3
#define CONTINUATION 2
#define TS_LIMIT ((int64_t)1 << 61)
#define MAX_TYPES 63
#define MAX_BITS 32 /* sequence counters are 8 to 32 bits wide (0: a Format 3 source ID fills
                     * the word) */


/* a growable array of int64 rows */
typedef struct {
    int64_t *v;
    Py_ssize_t n, cap, width;
} Rows;

static int64_t *push(Rows *a) {
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap ? 2 * a->cap : 256;
        int64_t *v = PyMem_Realloc(a->v, (size_t)cap * a->width * sizeof(int64_t));
        if (v == NULL) return NULL;
        a->v = v;
        a->cap = cap;
    }
    return a->v + a->width * a->n++;
}

/* interning of 6-word keys: ids in order of first appearance */
typedef struct {
    Rows keys;
    int64_t *slot;
    Py_ssize_t size;
} Table;

static uint64_t hash6(const int64_t *k) {
    uint64_t h = (uint64_t)k[0] * 0x9E3779B97F4A7C15ULL ^ (uint64_t)k[1] * 0xC2B2AE3D27D4EB4FULL ^
                 (uint64_t)k[2] * 0x165667B19E3779F9ULL ^ (uint64_t)k[3] * 0xD6E8FEB86659FD93ULL ^
                 (uint64_t)k[4] * 0xFF51AFD7ED558CCDULL ^ (uint64_t)k[5] * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 32;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 29);
}

/* the key's id, *is_new set when it is new; -1 when out of memory */
static int64_t intern(Table *t, const int64_t *key, int *is_new) {
    Py_ssize_t mask = t->size - 1, i = (Py_ssize_t)(hash6(key) & (uint64_t)mask);
    for (;; i = (i + 1) & mask) {
        int64_t id = t->slot[i];
        if (id < 0) break;
        if (memcmp(t->keys.v + 6 * id, key, 6 * sizeof(int64_t)) == 0) {
            *is_new = 0;
            return id;
        }
    }
    int64_t *row = push(&t->keys);
    if (row == NULL) return -1;
    memcpy(row, key, 6 * sizeof(int64_t));
    int64_t id = t->keys.n - 1;
    t->slot[i] = id;
    *is_new = 1;
    if (2 * t->keys.n > t->size) { /* keep the load at most one half */
        int64_t *slot = PyMem_Malloc(2 * t->size * sizeof(int64_t));
        if (slot == NULL) return -1;
        PyMem_Free(t->slot);
        t->slot = slot;
        t->size *= 2;
        mask = t->size - 1;
        for (Py_ssize_t j = 0; j < t->size; j++) slot[j] = -1;
        for (int64_t s = 0; s < t->keys.n; s++) {
            Py_ssize_t j = (Py_ssize_t)(hash6(t->keys.v + 6 * s) & (uint64_t)mask);
            while (slot[j] >= 0) j = (j + 1) & mask;
            slot[j] = s;
        }
    }
    return id;
}

static int table_init(Table *t) {
    memset(t, 0, sizeof *t);
    t->keys.width = 6;
    t->size = 256;
    t->slot = PyMem_Malloc(t->size * sizeof(int64_t));
    if (t->slot == NULL) return -1;
    for (Py_ssize_t i = 0; i < t->size; i++) t->slot[i] = -1;
    return 0;
}

static void table_free(Table *t) {
    PyMem_Free(t->keys.v);
    PyMem_Free(t->slot);
}

/* rows of `width` int64 grouped by column `by` (0 <= value < groups), stable, as bytes */
static PyObject *grouped(const Rows *a, int by, Py_ssize_t groups) {
    int64_t *pos = PyMem_Calloc((size_t)groups + 1, sizeof(int64_t));
    PyObject *out = PyBytes_FromStringAndSize(NULL, a->n * a->width * (Py_ssize_t)sizeof(int64_t));
    if (pos == NULL || out == NULL) {
        PyMem_Free(pos);
        Py_XDECREF(out);
        return PyErr_NoMemory();
    }
    int64_t *o = (int64_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t r = 0; r < a->n; r++) pos[a->v[r * a->width + by] + 1]++;
    for (Py_ssize_t g = 0; g < groups; g++) pos[g + 1] += pos[g];
    for (Py_ssize_t r = 0; r < a->n; r++) {
        const int64_t *src = a->v + r * a->width;
        memcpy(o + a->width * pos[src[by]]++, src, a->width * sizeof(int64_t));
    }
    PyMem_Free(pos);
    return out;
}

static PyObject *accumulate(PyObject *self, PyObject *args) {
    Py_buffer b[4 + NIN];
    double keep_std;
    Py_ssize_t keep_all;
    memset(b, 0, sizeof b);
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*dn", &b[0], &b[1], &b[2], &b[3],
                          &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10], &b[11], &b[12],
                          &b[13], &b[14], &b[15], &keep_std, &keep_all))
        return NULL;
    PyObject *result = NULL, *sbytes = NULL, *qbytes = NULL, *kbytes = NULL, *rbytes = NULL;
    Table streams, counters;
    Rows st = {NULL, 0, 0, SCOLS}, kept = {NULL, 0, 0, 4}, runs = {NULL, 0, 0, 4};
    uint64_t *q = NULL;
    double *fsum = NULL;
    int32_t *sid = NULL;
    int64_t *cstate = NULL; /* per counter: last message, open run */
    Py_ssize_t nf = b[0].len / 4, n = b[4].len / 8, qcap = 0, ccap = 0;
    int failed = table_init(&streams);
    failed |= table_init(&counters);
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    static const char *const names[4 + NIN] = {
        "flow", "frame", "ts", "ftype", "row", "proto", "id1", "id2", "id3", "id4", "seq",
        "bits", "size", "state", "error", "segment"};
    arg_t args_[4 + NIN];
    for (int j = 0; j < 4 + NIN; j++)
        args_[j] = (arg_t){&b[j], names[j], j == 0 ? 4 : j == 3 ? 2 : 8, 0}; /* all read-only */
    if (check_args("accumulate", args_, 4 + NIN) < 0)
        goto done;
    int bad = b[1].len != nf * 8 || b[2].len != nf * 8 || b[3].len != nf * 2;
    for (int j = 4; j < 4 + NIN; j++) bad |= b[j].len != n * 8;
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "accumulate: column lengths differ");
        goto done;
    }
    const int32_t *flow = b[0].buf;
    const int64_t *frame = b[1].buf, *ts = b[2].buf;
    const int16_t *ftype = b[3].buf;
    const int64_t *c[NIN];
    for (int j = 0; j < NIN; j++) c[j] = b[4 + j].buf;
    /* everything pass 1 indexes with, shifts by or adds up, before it starts */
    int far = 0;
    uint64_t big = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r = c[ROW][i], bits = c[BITS][i], z = c[SIZE][i];
        if (r < 0 || r >= nf || flow[r] < 0) {
            PyErr_Format(PyExc_IndexError, "accumulate: row %lld of message %zd is outside the "
                         "%zd frames or in no flow", (long long)r, i, nf);
            goto done;
        }
        if (c[PROTO][i] == IENA && (ftype[r] < 0 || ftype[r] >= MAX_TYPES)) {
            PyErr_Format(PyExc_IndexError, "accumulate: frame type %d of message %zd is outside "
                         "[0, %d)", (int)ftype[r], i, MAX_TYPES);
            goto done;
        }
        if (bits < 0 || bits > MAX_BITS) {
            PyErr_Format(PyExc_ValueError, "accumulate: sequence width %lld of message %zd is "
                         "outside [0, %d]", (long long)bits, i, MAX_BITS);
            goto done;
        }
        uint64_t a = z < 0 ? (uint64_t)0 - (uint64_t)z : (uint64_t)z;
        big = a > big ? a : big;
        far |= ts[r] > TS_LIMIT || ts[r] < -TS_LIMIT;
    }
    /* n * max |size| bounds every stream's byte count */
    if (n > 0 && big > (uint64_t)INT64_MAX / (uint64_t)n) {
        PyErr_Format(PyExc_ValueError, "accumulate: sizes up to %llu in %zd messages could pass "
                     "int64", (unsigned long long)big, n);
        goto done;
    }
    if (far) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    sid = PyMem_Malloc((n ? n : 1) * sizeof(int32_t));
    if (sid == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* pass 1: streams, stats, counters and runs */
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t r = c[ROW][i];
        int64_t t = ts[r], f = frame[r];
        int64_t key[6] = {flow[r], c[PROTO][i], c[ID1][i], c[ID2][i], c[ID3][i], c[ID4][i]};
        int is_new;
        int64_t s = intern(&streams, key, &is_new);
        if (s < 0 || s > INT32_MAX) {
            PyErr_NoMemory();
            goto done;
        }
        sid[i] = (int32_t)s;
        int64_t *o;
        if (is_new) {
            if (key[1] == CH10) { /* a Chapter 10 channel's sequence counter is shared */
                key[3] = -1;
                key[4] = key[5] = 0;
            }
            int64_t g = intern(&counters, key, &is_new), *row = push(&st);
            if (g < 0 || row == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            if (streams.keys.n > qcap) {
                qcap = 2 * streams.keys.n;
                uint64_t *q2 = PyMem_Realloc(q, qcap * 3 * sizeof(uint64_t));
                double *f2 = q2 ? PyMem_Realloc(fsum, qcap * 2 * sizeof(double)) : NULL;
                if (q2) q = q2;
                if (f2) fsum = f2;
                if (q2 == NULL || f2 == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
            }
            if (counters.keys.n > ccap) {
                ccap = 2 * counters.keys.n;
                int64_t *c2 = PyMem_Realloc(cstate, ccap * 2 * sizeof(int64_t));
                if (c2 == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                cstate = c2;
            }
            if (is_new) cstate[2 * g] = -1;
            o = row;
            memset(o, 0, SCOLS * sizeof(int64_t));
            o[FIRST_MSG] = i;
            o[COUNTER] = g;
            o[FRAMES] = 1;
            o[BYTES] = c[SIZE][i];
            o[FIRST_FRAME] = o[LAST_FRAME] = f;
            o[FIRST_TS] = o[LAST_TS] = t;
            o[ALL_KEPT] = 1;
            o[STATUS_FIRST] = o[STATUS_LAST] = -1;
            q[3 * s] = q[3 * s + 1] = q[3 * s + 2] = 0;
            fsum[2 * s] = fsum[2 * s + 1] = 0.0;
        } else {
            o = st.v + SCOLS * s;
            int64_t iat = t - o[LAST_TS];
            o[FRAMES]++;
            o[BYTES] += c[SIZE][i];
            o[LAST_FRAME] = f;
            o[LAST_TS] = t;
            if (o[N_IAT] == 0 || iat < o[MIN]) o[MIN] = iat;
            if (o[N_IAT] == 0 || iat > o[MAX]) o[MAX] = iat;
            o[N_IAT]++;
            /* |iat| < 2^63, so its square fits in 128 bits; carries go to the third word */
            uint64_t a = iat < 0 ? (uint64_t)0 - (uint64_t)iat : (uint64_t)iat;
            unsigned __int128 sq = (unsigned __int128)a * a;
            unsigned __int128 low = ((unsigned __int128)q[3 * s + 1] << 64 | q[3 * s]) + sq;
            if (low < sq) q[3 * s + 2]++;
            q[3 * s] = (uint64_t)low;
            q[3 * s + 1] = (uint64_t)(low >> 64);
            double x = (double)iat;
            fsum[2 * s] += x;
            fsum[2 * s + 1] += x * x;
        }
        int64_t seg = c[SEGMENT][i];
        o[ERRORS] += c[ERROR][i] != 0;
        o[SEGMENTS] += seg > 0;
        o[NUMBERED] += seg != CONTINUATION;
        if (c[PROTO][i] == IENA) { /* only IENA messages have a status and report frame types */
            if (o[IENA_MSGS]++ == 0)
                o[STATUS_FIRST] = c[STATE][i];
            else if (c[STATE][i] != o[STATUS_LAST])
                o[CHANGES]++;
            o[STATUS_LAST] = c[STATE][i];
            o[TYPES] |= (int64_t)1 << ftype[r];
        }
        if (seg == CONTINUATION) /* it repeats its packet's sequence number */
            continue;
        int64_t g = o[COUNTER], p = cstate[2 * g], bits = c[BITS][i];
        uint64_t mask = ((uint64_t)1 << bits) - 1;
        if (p < 0 || (((uint64_t)c[SEQ][i] - (uint64_t)c[SEQ][p]) & mask) != 1) {
            int64_t *run = push(&runs);
            if (run == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            run[0] = g;
            run[1] = i;
            run[3] = 0;
            cstate[2 * g + 1] = runs.n - 1;
        }
        int64_t *run = runs.v + 4 * cstate[2 * g + 1];
        run[2] = i;
        run[3]++;
        cstate[2 * g] = i;
    }

    /* pass 2: the IATs above each stream's cut, and the largest one below it */
    Py_ssize_t k = streams.keys.n;
    for (Py_ssize_t s = 0; s < k; s++) {
        int64_t *o = st.v + SCOLS * s;
        double cut = INFINITY;
        if (o[N_IAT] > 0 && o[N_IAT] <= keep_all) {
            cut = -INFINITY; /* a few messages: all kept (scopestats.KEEP_ALL_UP_TO) */
        } else if (o[N_IAT] > 0) {
            double m = (double)o[N_IAT], mean = fsum[2 * s] / m;
            double var = fsum[2 * s + 1] / m - mean * mean;
            cut = mean + keep_std * sqrt(var > 0 ? var : 0.0);
        }
        fsum[2 * s] = cut; /* the float sums are spent: the cut takes their place */
    }
    int64_t *prev = PyMem_Malloc((k ? k : 1) * sizeof(int64_t));
    if (prev == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t s = 0; s < k; s++) prev[s] = INT64_MIN;
    for (Py_ssize_t i = 0; i < n; i++) {
        int32_t s = sid[i];
        int64_t r = c[ROW][i], t = ts[r], *o = st.v + SCOLS * s;
        if (prev[s] == INT64_MIN) {
            prev[s] = t;
            continue;
        }
        int64_t iat = t - prev[s];
        prev[s] = t;
        if ((double)iat > fsum[2 * s]) {
            int64_t *kr = push(&kept);
            if (kr == NULL) {
                PyMem_Free(prev);
                PyErr_NoMemory();
                goto done;
            }
            kr[0] = s;
            kr[1] = iat;
            kr[2] = frame[r];
            kr[3] = t;
            o[N_KEPT]++;
        } else if (o[ALL_KEPT] || iat > o[LEFT_OUT]) {
            o[LEFT_OUT] = iat;
            o[ALL_KEPT] = 0;
        }
    }
    PyMem_Free(prev);
    sbytes = PyBytes_FromStringAndSize((const char *)st.v, k * SCOLS * (Py_ssize_t)sizeof(int64_t));
    qbytes = PyBytes_FromStringAndSize((const char *)q, k * 3 * (Py_ssize_t)sizeof(uint64_t));
    kbytes = grouped(&kept, 0, k);
    rbytes = grouped(&runs, 0, counters.keys.n);
    if (sbytes && qbytes && kbytes && rbytes)
        result = PyTuple_Pack(4, sbytes, qbytes, kbytes, rbytes);
done:
    Py_XDECREF(sbytes);
    Py_XDECREF(qbytes);
    Py_XDECREF(kbytes);
    Py_XDECREF(rbytes);
    table_free(&streams);
    table_free(&counters);
    PyMem_Free(st.v);
    PyMem_Free(kept.v);
    PyMem_Free(runs.v);
    PyMem_Free(q);
    PyMem_Free(fsum);
    PyMem_Free(sid);
    PyMem_Free(cstate);
    for (int j = 0; j < 4 + NIN; j++)
        if (b[j].obj) PyBuffer_Release(&b[j]);
    return result;
}

static PyMethodDef methods[] = {
    {"accumulate", accumulate, METH_VARARGS, "Stream stats, counters and sequence runs of a chunk."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_streams", NULL, -1, methods};

PyMODINIT_FUNC PyInit__streams(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "SCOLS", SCOLS) < 0 ||
        PyModule_AddIntConstant(m, "MAX_TYPES", MAX_TYPES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
