/* diffjpeg.backends._trellis: rate-distortion optimal quantized values for baseline
 * JPEG blocks (the compiled twin of diffjpeg/codec/rdo.py's _ac_trellis_numpy and
 * _dc_trellis_numpy, step for step; that module's docstring states the
 * model and the JPEG facts it relies on).
 *
 * ac(coef, table, weight, cost, out, counts): per block, the AC values
 *   minimizing  bits + sum_k weight[k] * (coef[k] - value[k] * table[k])^2
 *   where bits are cost[symbol] of each (run, size) symbol, ZRL and EOB plus
 *   the size's extra bits; dynamic programming over zigzag positions whose
 *   state is the position of the last nonzero value. Candidates at a
 *   position: for each size category up to that of the rounded value, the
 *   value of that size nearest to the coefficient (0 is the zero run).
 *   Writes the AC values (natural order; DC left as it is) and adds the
 *   chosen symbols to counts[256].
 * dc(coef, table0, weight0, cost, out, counts): the DC values of a
 *   component's blocks in coding order (floor or ceiling of coef / table0),
 *   a Viterbi pass over the chain of DC differences; adds the size symbols
 *   to counts[12].
 *
 * Costs are evaluated in one fixed order of double operations (compiled
 * with -ffp-contract=off) so that the numpy twin gives the same choices;
 * ties keep the first candidate (smaller size, then earlier predecessor).
 * The GIL is released; no state outlives a call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static const int ZIGZAG[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

#define MAX_AC 1023
#define MAX_DC 1023
#define MIN_DC (-1024)

static int nbits(int v)
{
    int n = 0;
    while (v) {
        n++;
        v >>= 1;
    }
    return n;
}

static void ac_block(const double *c, const double *q, const double *w, const double *cost, int32_t *out, int64_t *counts)
{
    double a[64], z[64], best[64];
    int r[64], prev[64], val[64], idx[64];
    int sign[64];
    z[0] = 0.0;
    for (int k = 1; k < 64; k++) {
        int n = ZIGZAG[k];
        double x = c[n];
        sign[k] = x < 0 ? -1 : 1;
        a[k] = fabs(x);
        double rounded = floor(a[k] / q[n] + 0.5);
        r[k] = rounded > MAX_AC ? MAX_AC : (int)rounded;
        z[k] = z[k - 1] + w[n] * a[k] * a[k];
    }
    best[0] = 0.0;
    idx[0] = 0;
    int count = 1;
    for (int i = 1; i < 64; i++) {
        if (r[i] == 0)
            continue;
        int n = ZIGZAG[i];
        int top = nbits(r[i]);
        double b = INFINITY;
        int bp = 0, bv = 0;
        for (int s = 1; s <= top; s++) {
            int v = s < top ? (1 << s) - 1 : r[i];
            double e = a[i] - v * q[n];
            double d = w[n] * e * e;
            for (int t = 0; t < count; t++) {
                int j = idx[t];
                int run = i - 1 - j;
                double total = best[j] + (z[i - 1] - z[j]) + (run >> 4) * cost[0xF0] + cost[((run & 15) << 4) | s] + s + d;
                if (total < b) {
                    b = total;
                    bp = j;
                    bv = v;
                }
            }
        }
        best[i] = b;
        prev[i] = bp;
        val[i] = bv;
        idx[count++] = i;
    }
    double end = INFINITY;
    int last = 0;
    for (int t = 0; t < count; t++) {
        int e = idx[t];
        double total = best[e] + (z[63] - z[e]) + (e < 63 ? cost[0] : 0.0);
        if (total < end) {
            end = total;
            last = e;
        }
    }
    for (int k = 1; k < 64; k++)
        out[ZIGZAG[k]] = 0;
    if (last < 63)
        counts[0]++;
    for (int i = last; i > 0; i = prev[i]) {
        int run = i - 1 - prev[i];
        out[ZIGZAG[i]] = sign[i] * val[i];
        counts[((run & 15) << 4) | nbits(val[i])]++;
        counts[0xF0] += run >> 4;
    }
}

static int get(PyObject *obj, Py_buffer *b, int writable, Py_ssize_t itemsize, const char *fmt, const char *what)
{
    if (PyObject_GetBuffer(obj, b, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (b->itemsize != itemsize || !b->format || strchr(fmt, b->format[0]) == NULL || b->format[1] != 0) {
        PyErr_Format(PyExc_TypeError, "%s: wrong element type '%s'", what, b->format ? b->format : "?");
        PyBuffer_Release(b);
        return -1;
    }
    return 0;
}

static PyObject *ac(PyObject *self, PyObject *args)
{
    PyObject *o[6];
    Py_buffer b[6];
    int got = 0;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOO:ac", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]))
        return NULL;
    static const char *names[6] = {"coef", "table", "weight", "cost", "out", "counts"};
    static const int writable[6] = {0, 0, 0, 0, 1, 1};
    static const Py_ssize_t sizes[6] = {8, 8, 8, 8, 4, 8};
    static const char *formats[6] = {"d", "d", "d", "d", "i", "lq"};
    for (; got < 6; got++)
        if (get(o[got], &b[got], writable[got], sizes[got], formats[got], names[got]) < 0)
            goto done;
    Py_ssize_t blocks = b[0].len / (64 * 8);
    if (b[0].len != blocks * 64 * 8 || b[4].len != blocks * 64 * 4 || b[1].len != 64 * 8 || b[2].len != 64 * 8 ||
        b[3].len != 256 * 8 || b[5].len != 256 * 8) {
        PyErr_SetString(PyExc_ValueError, "ac: coef (N, 64), table (64), weight (64), cost (256), out (N, 64), counts (256)");
        goto done;
    }
    const double *coef = b[0].buf, *table = b[1].buf, *weight = b[2].buf, *cost = b[3].buf;
    int32_t *out = b[4].buf;
    int64_t *counts = b[5].buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < blocks; k++)
        ac_block(coef + 64 * k, table, weight, cost, out + 64 * k, counts);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&b[k]);
    return result;
}

/* Viterbi over the chain of DC differences: two candidates per block. */
static int dc_chain(const double *c, Py_ssize_t n, double q, double w, const double *cost, int32_t *out, int64_t *counts)
{
    double prev_cost[2] = {0.0, INFINITY};
    int prev_value[2] = {0, 0};
    uint8_t *from = PyMem_RawMalloc(n > 0 ? (size_t)n * 2 : 1);
    int32_t *values = PyMem_RawMalloc(n > 0 ? (size_t)n * 2 * sizeof(int32_t) : 1);
    if (!from || !values) {
        PyMem_RawFree(from);
        PyMem_RawFree(values);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        double low = floor(c[k] / q);
        double now_cost[2];
        for (int m = 0; m < 2; m++) {
            double v = low + m;
            v = v < MIN_DC ? MIN_DC : v > MAX_DC ? MAX_DC : v;
            int value = (int)v;
            double e = c[k] - v * q;
            double d = w * e * e;
            double b = INFINITY;
            int bp = 0;
            for (int p = 0; p < 2; p++) {
                int diff = value - prev_value[p];
                int s = nbits(diff < 0 ? -diff : diff);
                double total = prev_cost[p] + cost[s] + s + d;
                if (total < b) {
                    b = total;
                    bp = p;
                }
            }
            now_cost[m] = b;
            from[2 * k + m] = (uint8_t)bp;
            values[2 * k + m] = value;
        }
        for (int m = 0; m < 2; m++) {
            prev_cost[m] = now_cost[m];
            prev_value[m] = values[2 * k + m];
        }
    }
    int m = prev_cost[1] < prev_cost[0] ? 1 : 0;
    for (Py_ssize_t k = n - 1; k >= 0; k--) {
        out[k] = values[2 * k + m];
        m = from[2 * k + m];
    }
    int previous = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        int diff = out[k] - previous;
        counts[nbits(diff < 0 ? -diff : diff)]++;
        previous = out[k];
    }
    PyMem_RawFree(from);
    PyMem_RawFree(values);
    return 0;
}

static PyObject *dc(PyObject *self, PyObject *args)
{
    PyObject *o[4];
    Py_buffer b[4];
    double q, w;
    int got = 0;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "OddOOO:dc", &o[0], &q, &w, &o[1], &o[2], &o[3]))
        return NULL;
    static const char *names[4] = {"coef", "cost", "out", "counts"};
    static const int writable[4] = {0, 0, 1, 1};
    static const Py_ssize_t sizes[4] = {8, 8, 4, 8};
    static const char *formats[4] = {"d", "d", "i", "lq"};
    for (; got < 4; got++)
        if (get(o[got], &b[got], writable[got], sizes[got], formats[got], names[got]) < 0)
            goto done;
    Py_ssize_t n = b[0].len / 8;
    if (b[2].len != n * 4 || b[1].len != 12 * 8 || b[3].len != 12 * 8 || !(q >= 1.0) || !(w >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "dc: coef (N), q >= 1, w >= 0, cost (12), out (N), counts (12)");
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = dc_chain(b[0].buf, n, q, w, b[1].buf, b[2].buf, b[3].buf);
    Py_END_ALLOW_THREADS
    if (status < 0)
        PyErr_NoMemory();
    else
        result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&b[k]);
    return result;
}

static PyMethodDef methods[] = {
    {"ac", ac, METH_VARARGS, "ac(coef, table, weight, cost, out, counts): RD-optimal AC values per block."},
    {"dc", dc, METH_VARARGS, "dc(coef, q, w, cost, out, counts): RD-optimal DC values along a component's chain."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_trellis", "Rate-distortion optimal JPEG quantization, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__trellis(void)
{
    return PyModule_Create(&module);
}
