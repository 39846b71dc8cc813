/*
 * The real-valued 2-D DCT of 8x8 blocks, out = A X A^T, in one compiled
 * pass: float and soft mode's forward and inverse DCT (A = C or C^T, C the
 * orthonormal DCT-II matrix) and every mode's adjoints (dct.py).
 *
 * Why not a GEMM: a BLAS picks its kernels, blocking and thread split from
 * the matrix sizes and the CPU, so a block's sums came out in another order
 * (one unit in the last place) when the batch, the strip height or the
 * thread count changed, or on another CPU (AMD EPYC against Intel Xeon).
 * Here every output is summed in one fixed order that depends on nothing
 * but the block:
 *
 *   rows:    T[i][v] = ((X[i][0] A[v][0] + X[i][1] A[v][1]) + ...) + X[i][7] A[v][7]
 *   columns: Y[u][v] = ((A[u][0] T[0][v] + A[u][1] T[1][v]) + ...) + A[u][7] T[7][v]
 *
 * each product and sum an IEEE operation of the buffer's type (built with
 * -ffp-contract=off: no FMA fuses them), so the values are those of
 * dct.py's tensor form of the same steps, bit for bit, on every x86-64 or
 * other CPU, whatever the vector width (tests/test_dct_order.py).
 * Separable, it costs 16 multiply-adds per sample where the 64x64 GEMM of
 * the Kronecker matrix cost 64.
 *
 * Buffers: src and dst (P, BY, BX, 8, 8), float32 or float64, of one kind,
 * at any strides with each row of 8 contiguous: the blocks of planes as
 * split_blocks views them, so a transform reads a plane's blocks and writes
 * into a plane without a copy in between; dst must not overlap src. With
 * `shift`, X - shift (one IEEE subtraction, the level shift's) is what is
 * transformed. matrix: A as 64 values of the same kind, row-major.
 * Each call takes blocks [start, stop) (cpu.py shares them among
 * threads) and releases the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* HOT: AVX2 gives the eight sums of a row eight lanes at once (the values are the same) */
#include "_loops.h"

/* Where block n of a (P, BY, BX, 8, 8) buffer starts, and its row stride (bytes) */
typedef struct {
    const char *base;
    Py_ssize_t s0, s1, s2, row, by, bx;
} Blocks;

static inline const char *block_at(const Blocks *b, Py_ssize_t n)
{
    Py_ssize_t j = n % b->bx, i = (n / b->bx) % b->by, p = n / (b->bx * b->by);
    return b->base + p * b->s0 + i * b->s1 + j * b->s2;
}

#if defined(__GNUC__) || defined(__clang__)
/* A row of a block as one vector of eight lanes (GCC's and Clang's vector
 * extensions: AVX2 registers where the CPU has them, narrower ones
 * otherwise); each lane's operations are the scalar loop's. */
#define ROW_TYPE(T, NAME) typedef T NAME __attribute__((vector_size(8 * sizeof(T))));
#define DEFINE_LOOP(T, SUFFIX, ROW)                                                                          \
    HOT static void transform_##SUFFIX(const Blocks *src, const Blocks *dst, const T *a, int shifted, T shift,  \
                                       Py_ssize_t start, Py_ssize_t stop)                                    \
    {                                                                                                        \
        ROW at[8]; /* at[j] = column j of A: lane v holds A[v][j] */                                         \
        for (int j = 0; j < 8; j++)                                                                          \
            for (int v = 0; v < 8; v++) at[j][v] = a[v * 8 + j];                                             \
        for (Py_ssize_t n = start; n < stop; n++) {                                                          \
            const char *in = block_at(src, n);                                                               \
            char *out = (char *)block_at(dst, n);                                                            \
            T x[64];                                                                                         \
            for (int i = 0; i < 8; i++) {                                                                    \
                memcpy(x + i * 8, in + i * src->row, 8 * sizeof(T));                                         \
                if (shifted)                                                                                 \
                    for (int j = 0; j < 8; j++) x[i * 8 + j] = x[i * 8 + j] - shift;                         \
            }                                                                                                \
            ROW t[8];                                                                                        \
            for (int i = 0; i < 8; i++) {                                                                    \
                ROW acc = x[i * 8] * at[0];                                                                  \
                for (int j = 1; j < 8; j++) acc = acc + x[i * 8 + j] * at[j];                                \
                t[i] = acc;                                                                                  \
            }                                                                                                \
            for (int u = 0; u < 8; u++) {                                                                    \
                ROW acc = a[u * 8] * t[0];                                                                   \
                for (int i = 1; i < 8; i++) acc = acc + a[u * 8 + i] * t[i];                                 \
                memcpy(out + u * dst->row, &acc, sizeof acc);                                                \
            }                                                                                                \
        }                                                                                                    \
    }
ROW_TYPE(float, row_f32)
ROW_TYPE(double, row_f64)
DEFINE_LOOP(float, f32, row_f32)
DEFINE_LOOP(double, f64, row_f64)
#else
#define DEFINE_LOOP(T, SUFFIX)                                                                              \
    static void transform_##SUFFIX(const Blocks *src, const Blocks *dst, const T *a, int shifted, T shift,      \
                                   Py_ssize_t start, Py_ssize_t stop)                                        \
    {                                                                                                       \
        for (Py_ssize_t n = start; n < stop; n++) {                                                         \
            const char *in = block_at(src, n);                                                              \
            char *out = (char *)block_at(dst, n);                                                           \
            T x[64], t[64];                                                                                 \
            for (int i = 0; i < 8; i++) {                                                                   \
                memcpy(x + i * 8, in + i * src->row, 8 * sizeof(T));                                        \
                if (shifted)                                                                                \
                    for (int j = 0; j < 8; j++) x[i * 8 + j] = x[i * 8 + j] - shift;                        \
            }                                                                                               \
            for (int i = 0; i < 8; i++)                                                                     \
                for (int v = 0; v < 8; v++) {                                                               \
                    T acc = x[i * 8] * a[v * 8];                                                            \
                    for (int j = 1; j < 8; j++) acc = acc + x[i * 8 + j] * a[v * 8 + j];                    \
                    t[i * 8 + v] = acc;                                                                     \
                }                                                                                           \
            for (int u = 0; u < 8; u++) {                                                                   \
                T *y = (T *)(out + u * dst->row);                                                           \
                for (int v = 0; v < 8; v++) {                                                               \
                    T acc = a[u * 8] * t[v];                                                                \
                    for (int i = 1; i < 8; i++) acc = acc + a[u * 8 + i] * t[i * 8 + v];                    \
                    y[v] = acc;                                                                             \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
    }
DEFINE_LOOP(float, f32)
DEFINE_LOOP(double, f64)
#endif

/* A (P, BY, BX, 8, 8) buffer of the kind, each row of 8 contiguous, strides
 * non-negative multiples of the item; its byte range [lo, hi) */
static int blocks_view(const Py_buffer *b, int kind, Blocks *out, const char **lo, const char **hi)
{
    if (float_kind(b) != kind || b->ndim != 5 || b->shape[3] != 8 || b->shape[4] != 8 || b->strides[4] != b->itemsize) return 0;
    Py_ssize_t last = 0;
    for (int d = 0; d < 4; d++) {
        if (b->strides[d] < 0 || b->strides[d] % b->itemsize) return 0;
        last += (b->shape[d] - 1) * b->strides[d];
    }
    *out = (Blocks){(const char *)b->buf, b->strides[0], b->strides[1], b->strides[2], b->strides[3], b->shape[1], b->shape[2]};
    *lo = (const char *)b->buf;
    *hi = *lo + last + 8 * b->itemsize;
    return 1;
}

static PyObject *block_transform(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *dst, *matrix, *shift_arg = Py_None;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOnn|O:block_transform", &src, &dst, &matrix, &start, &stop, &shift_arg)) return NULL;
    double shift = shift_arg == Py_None ? 0.0 : PyFloat_AsDouble(shift_arg);
    if (PyErr_Occurred()) return NULL;
    Py_buffer s, d, m;
    if (PyObject_GetBuffer(src, &s, PyBUF_RECORDS_RO) < 0) return NULL;
    if (PyObject_GetBuffer(dst, &d, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    if (PyObject_GetBuffer(matrix, &m, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&d);
        return NULL;
    }
    int kind = float_kind(&s);
    Blocks in, out;
    const char *s_lo, *s_hi, *d_lo, *d_hi;
    int ok = kind && float_kind(&m) == kind && m.len == 64 * m.itemsize && blocks_view(&s, kind, &in, &s_lo, &s_hi) &&
             blocks_view(&d, kind, &out, &d_lo, &d_hi);
    Py_ssize_t count = ok ? s.shape[0] * s.shape[1] * s.shape[2] : 0;
    if (ok)
        ok = s.shape[0] == d.shape[0] && s.shape[1] == d.shape[1] && s.shape[2] == d.shape[2] && start >= 0 && stop >= start && stop <= count;
    if (ok && count > 0) /* no overlap: the column pass writes dst while later blocks of src are still to be read */
        ok = d_hi <= s_lo || s_hi <= d_lo;
    if (!ok) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&d);
        PyBuffer_Release(&m);
        PyErr_SetString(PyExc_ValueError, "_dct: bad arguments");
        return NULL;
    }
    int shifted = shift_arg != Py_None;
    Py_BEGIN_ALLOW_THREADS
    if (kind == 2)
        transform_f64(&in, &out, (const double *)m.buf, shifted, shift, start, stop);
    else
        transform_f32(&in, &out, (const float *)m.buf, shifted, (float)shift, start, stop);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    PyBuffer_Release(&m);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"block_transform", block_transform, METH_VARARGS,
     "block_transform(src, dst, matrix, start, stop, shift=None): dst = A (X - shift) A^T for the 8x8 blocks X [start, stop) "
     "of src ((P, BY, BX, 8, 8), any strides, rows contiguous), A the 64 values of matrix (row-major), in a fixed order of IEEE "
     "products and sums."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dct", "Compiled loop of diffjpeg.stages.dct's real-valued block transform.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__dct(void) { return PyModule_Create(&module); }
