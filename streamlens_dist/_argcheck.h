/* The buffer checks every entry point of the compiled modules makes before it reads anything
 * (each module is its own extension, so each compiles this header in).
 *
 * A buffer argument: `item` bytes per element (its length must be a whole number of them, its
 * address aligned to min(item, 8): a misaligned int64 load is undefined behaviour even where
 * the CPU allows it) and whether the function writes it (`out`). Outputs must not share memory
 * with any other argument: the functions check their inputs (ranges, offsets, row numbers,
 * an interface table's divisors) before a pass and read them during it, so an output laid over
 * an input would turn checked values into unchecked ones. Empty buffers are never touched. */
#ifndef STREAMLENS_ARGCHECK_H
#define STREAMLENS_ARGCHECK_H

#include <Python.h>
#include <stdint.h>

typedef struct {
    const Py_buffer *buf;
    const char *name;
    Py_ssize_t item;
    int out;
} arg_t;

static int check_args(const char *fn, const arg_t *a, int n)
{
    for (int i = 0; i < n; i++) {
        const Py_buffer *b = a[i].buf;
        Py_ssize_t align = a[i].item < 8 ? a[i].item : 8;
        if (b->len % a[i].item != 0) {
            PyErr_Format(PyExc_ValueError, "%s: %s has %zd bytes, not a whole number of %zd-byte "
                         "items", fn, a[i].name, b->len, a[i].item);
            return -1;
        }
        if (b->len > 0 && (uintptr_t)b->buf % (uintptr_t)align != 0) {
            PyErr_Format(PyExc_ValueError, "%s: %s is not aligned to %zd bytes", fn, a[i].name,
                         align);
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!a[i].out || a[i].buf->len == 0)
            continue;
        uintptr_t lo = (uintptr_t)a[i].buf->buf, hi = lo + (uintptr_t)a[i].buf->len;
        for (int j = 0; j < n; j++) {
            uintptr_t lo2 = (uintptr_t)a[j].buf->buf, hi2 = lo2 + (uintptr_t)a[j].buf->len;
            if (j != i && a[j].buf->len > 0 && lo < hi2 && lo2 < hi) {
                PyErr_Format(PyExc_ValueError, "%s: %s shares memory with %s", fn, a[i].name,
                             a[j].name);
                return -1;
            }
        }
    }
    return 0;
}

#endif
