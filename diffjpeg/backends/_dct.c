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
 * Buffers: src and dst (N, 64), float32 or float64, of one kind, rows
 * contiguous (a block in row-major order), rows at any distance; dst must
 * not overlap src. matrix: A as 64 values of the same kind, row-major.
 * Each call takes blocks [start, stop) (native.py shares them among
 * threads) and releases the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* HOT: AVX2 gives the eight sums of a row eight lanes at once (the values are the same) */
#include "_loops.h"

#if defined(__GNUC__) || defined(__clang__)
/* A row of a block as one vector of eight lanes (GCC's and Clang's vector
 * extensions: AVX2 registers where the CPU has them, narrower ones
 * otherwise); each lane's operations are the scalar loop's. */
#define ROW_TYPE(T, NAME) typedef T NAME __attribute__((vector_size(8 * sizeof(T))));
#define DEFINE_LOOP(T, SUFFIX, ROW)                                                                          \
    HOT static void transform_##SUFFIX(const char *src, Py_ssize_t src_stride, char *dst, Py_ssize_t dst_stride, \
                                       const T *a, Py_ssize_t start, Py_ssize_t stop)                        \
    {                                                                                                        \
        ROW at[8]; /* at[j] = column j of A: lane v holds A[v][j] */                                         \
        for (int j = 0; j < 8; j++)                                                                          \
            for (int v = 0; v < 8; v++) at[j][v] = a[v * 8 + j];                                             \
        for (Py_ssize_t n = start; n < stop; n++) {                                                          \
            const T *x = (const T *)(src + n * src_stride);                                                  \
            T *y = (T *)(dst + n * dst_stride);                                                              \
            ROW t[8];                                                                                        \
            for (int i = 0; i < 8; i++) {                                                                    \
                ROW acc = x[i * 8] * at[0];                                                                  \
                for (int j = 1; j < 8; j++) acc = acc + x[i * 8 + j] * at[j];                                \
                t[i] = acc;                                                                                  \
            }                                                                                                \
            for (int u = 0; u < 8; u++) {                                                                    \
                ROW acc = a[u * 8] * t[0];                                                                   \
                for (int i = 1; i < 8; i++) acc = acc + a[u * 8 + i] * t[i];                                 \
                memcpy(y + u * 8, &acc, sizeof acc);                                                         \
            }                                                                                                \
        }                                                                                                    \
    }
ROW_TYPE(float, row_f32)
ROW_TYPE(double, row_f64)
DEFINE_LOOP(float, f32, row_f32)
DEFINE_LOOP(double, f64, row_f64)
#else
#define DEFINE_LOOP(T, SUFFIX)                                                                              \
    static void transform_##SUFFIX(const char *src, Py_ssize_t src_stride, char *dst, Py_ssize_t dst_stride,     \
                                   const T *a, Py_ssize_t start, Py_ssize_t stop)                            \
    {                                                                                                       \
        for (Py_ssize_t n = start; n < stop; n++) {                                                         \
            const T *x = (const T *)(src + n * src_stride);                                                 \
            T *y = (T *)(dst + n * dst_stride);                                                             \
            T t[64];                                                                                        \
            for (int i = 0; i < 8; i++)                                                                     \
                for (int v = 0; v < 8; v++) {                                                               \
                    T acc = x[i * 8] * a[v * 8];                                                            \
                    for (int j = 1; j < 8; j++) acc = acc + x[i * 8 + j] * a[v * 8 + j];                    \
                    t[i * 8 + v] = acc;                                                                     \
                }                                                                                           \
            for (int u = 0; u < 8; u++)                                                                     \
                for (int v = 0; v < 8; v++) {                                                               \
                    T acc = a[u * 8] * t[v];                                                                \
                    for (int i = 1; i < 8; i++) acc = acc + a[u * 8 + i] * t[i * 8 + v];                    \
                    y[u * 8 + v] = acc;                                                                     \
                }                                                                                           \
        }                                                                                                   \
    }
DEFINE_LOOP(float, f32)
DEFINE_LOOP(double, f64)
#endif

static int rows_of_64(const Py_buffer *b)
{
    return b->ndim == 2 && b->shape[1] == 64 && b->strides[1] == b->itemsize && b->strides[0] >= 0 && b->strides[0] % b->itemsize == 0;
}

static PyObject *block_transform(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *dst, *matrix;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOnn:block_transform", &src, &dst, &matrix, &start, &stop)) return NULL;
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
    int ok = kind && float_kind(&d) == kind && float_kind(&m) == kind && m.len == 64 * m.itemsize && rows_of_64(&s) && rows_of_64(&d) &&
             s.shape[0] == d.shape[0] && start >= 0 && stop >= start && stop <= s.shape[0];
    if (ok && s.shape[0] > 0) { /* no overlap: the column pass writes dst while later blocks of src are still to be read */
        const char *s_lo = (const char *)s.buf, *s_hi = s_lo + (s.shape[0] - 1) * s.strides[0] + 64 * s.itemsize;
        const char *d_lo = (const char *)d.buf, *d_hi = d_lo + (d.shape[0] - 1) * d.strides[0] + 64 * d.itemsize;
        ok = d_hi <= s_lo || s_hi <= d_lo;
    }
    if (!ok) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&d);
        PyBuffer_Release(&m);
        PyErr_SetString(PyExc_ValueError, "_dct: bad arguments");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (kind == 2)
        transform_f64((const char *)s.buf, s.strides[0], (char *)d.buf, d.strides[0], (const double *)m.buf, start, stop);
    else
        transform_f32((const char *)s.buf, s.strides[0], (char *)d.buf, d.strides[0], (const float *)m.buf, start, stop);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    PyBuffer_Release(&m);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"block_transform", block_transform, METH_VARARGS,
     "block_transform(src, dst, matrix, start, stop): dst = A X A^T for the 8x8 blocks X (rows of 64) [start, stop) of src, "
     "A the 64 values of matrix (row-major), in a fixed order of IEEE products and sums."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dct", "Compiled loop of diffjpeg.stages.dct's real-valued block transform.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__dct(void) { return PyModule_Create(&module); }
