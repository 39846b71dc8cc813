/*
 * The real-valued color conversion, y = M x (+ offset) over the three
 * channels of each pixel, in one compiled pass: float and soft mode's RGB to
 * YCbCr and back, and every mode's transposes (M^T g, no offset) (color.py).
 *
 * Why not a batched GEMM: a BLAS picks its kernel (FMA or not, which
 * lanes) from the sizes and the CPU, so nothing promised a pixel the same
 * bits in a strip and in the whole image, or on another CPU. Here every
 * output is one fixed sequence of IEEE operations of the buffer's type:
 *
 *   y[c] = ((M[c][0] x[0] + M[c][1] x[1]) + M[c][2] x[2]) + offset[c]
 *
 * (built with -ffp-contract=off: no FMA fuses them), so the values are
 * those of color.py's tensor form of the same steps, bit for bit, whatever
 * the vector width (tests/core/test_contract.py).
 *
 * With `post` the same pass goes on as the decoder does after the product:
 * rounding (float mode), the clamp to [0, 255] and the division by 255 to
 * the output's [0, 1] (two passes over the image fewer), each the tensor
 * operation's IEEE step in the tensor operations' order, so the values are
 * theirs, bit for bit.
 *
 * Buffers: src and dst (B, 3, P), float32 or float64, of one kind, each
 * channel's P pixels contiguous, images and channels at any distance; dst
 * is src itself (in place: a chunk of pixels is computed into a buffer
 * before it is written) or apart from it. matrix (B, 3, 3) and
 * offset (B, 3) or None, of the same kind, any strides (a matrix shared by
 * the batch has stride 0). Each call takes pixels [start, stop) of every
 * image (native.py shares them among threads) and releases the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* HOT: AVX2 gives the loop eight pixels per instruction (the values are the same) */
#include "_loops.h"

/* What may follow the product in the same pass (the decoder's last steps,
 * color.py and codec/pipeline.py): round half to even (float mode), clamp
 * to [lo, hi], then divide by `divisor` (to [0, 1]); each the tensor
 * operation's IEEE step, in that order. */
typedef struct {
    int on, rounded, divided;
    double lo, hi, divisor;
} Post;

/* The chunk a pass computes into a buffer on the stack before it writes
 * dst: all of a chunk's inputs are read first, so dst may be src */
#define CHUNK 512
#define DEFINE_LOOP(T, SUFFIX, RINT)                                                                             \
    static inline __attribute__((always_inline)) T post_##SUFFIX(T v, int rounded, T lo, T hi, int divided, T divisor) \
    {                                                                                                            \
        if (rounded) v = RINT(v);                                                                                \
        v = v < lo ? lo : v; /* a NaN stays NaN, as torch's clamp keeps it */                                   \
        v = v > hi ? hi : v;                                                                                     \
        return divided ? v / divisor : v;                                                                        \
    }                                                                                                            \
    /* one chunk of pixels [p0, p0 + n), n <= CHUNK: each channel's outputs into buf, then to dst */       \
    HOT static void apply_##SUFFIX(const T *x0, const T *x1, const T *x2, T *y0, T *y1, T *y2, const T m[9],     \
                                   const T *offset, const Post *post, Py_ssize_t start, Py_ssize_t stop)         \
    {                                                                                                            \
        T *y[3] = {y0, y1, y2};                                                                                  \
        T buf[3][CHUNK];                                                                                         \
        for (Py_ssize_t p0 = start; p0 < stop; p0 += CHUNK) {                                                    \
            Py_ssize_t n = stop - p0 < CHUNK ? stop - p0 : CHUNK;                                                \
            const T *u = x0 + p0, *v = x1 + p0, *w = x2 + p0;                                                    \
            for (int c = 0; c < 3; c++) {                                                                        \
                T a = m[3 * c], b = m[3 * c + 1], d = m[3 * c + 2];                                              \
                T *out = buf[c];                                                                                 \
                T o = offset ? offset[c] : (T)0;                                                                 \
                if (post->on) {                                                                                  \
                    T lo = (T)post->lo, hi = (T)post->hi, divisor = (T)post->divisor;                            \
                    int rounded = post->rounded, divided = post->divided;                                        \
                    if (offset)                                                                                  \
                        for (Py_ssize_t p = 0; p < n; p++)                                                       \
                            out[p] = post_##SUFFIX(((a * u[p] + b * v[p]) + d * w[p]) + o, rounded, lo, hi, divided, divisor); \
                    else                                                                                         \
                        for (Py_ssize_t p = 0; p < n; p++)                                                       \
                            out[p] = post_##SUFFIX((a * u[p] + b * v[p]) + d * w[p], rounded, lo, hi, divided, divisor); \
                } else if (offset) {                                                                             \
                    for (Py_ssize_t p = 0; p < n; p++) out[p] = ((a * u[p] + b * v[p]) + d * w[p]) + o;            \
                } else {                                                                                         \
                    for (Py_ssize_t p = 0; p < n; p++) out[p] = (a * u[p] + b * v[p]) + d * w[p];                  \
                }                                                                                                \
            }                                                                                                    \
            for (int c = 0; c < 3; c++) memcpy(y[c] + p0, buf[c], n * sizeof(T));                                \
        }                                                                                                        \
    }

DEFINE_LOOP(float, f32, nearbyintf)
DEFINE_LOOP(double, f64, nearbyint)

/* (B, 3, P) with contiguous pixels and non-negative strides */
static int planes_ok(const Py_buffer *b)
{
    return b->ndim == 3 && b->shape[1] == 3 && b->strides[2] == b->itemsize && b->strides[0] >= 0 && b->strides[1] >= 0 &&
           b->strides[0] % b->itemsize == 0 && b->strides[1] % b->itemsize == 0;
}

static const char *at(const Py_buffer *b, Py_ssize_t i, Py_ssize_t j) { return (const char *)b->buf + i * b->strides[0] + j * b->strides[1]; }

static PyObject *apply(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *dst, *matrix, *offset_arg, *post_arg = Py_None;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOOnn|O:apply", &src, &dst, &matrix, &offset_arg, &start, &stop, &post_arg)) return NULL;
    Post post = {0};
    if (post_arg != Py_None) { /* (rounded, lo, hi, divisor or None) */
        PyObject *divisor_arg;
        if (!PyTuple_Check(post_arg) || !PyArg_ParseTuple(post_arg, "pddO", &post.rounded, &post.lo, &post.hi, &divisor_arg)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_color: post must be (rounded, lo, hi, divisor or None)");
            return NULL;
        }
        post.on = 1;
        post.divided = divisor_arg != Py_None;
        post.divisor = post.divided ? PyFloat_AsDouble(divisor_arg) : 1.0;
        if (PyErr_Occurred()) return NULL;
        if (!(post.lo <= post.hi) || (post.divided && !(post.divisor != 0.0))) {
            PyErr_SetString(PyExc_ValueError, "_color: post needs lo <= hi and a divisor other than 0");
            return NULL;
        }
    }
    Py_buffer s, d, m, o;
    int has_offset = offset_arg != Py_None, got = 0;
    if (PyObject_GetBuffer(src, &s, PyBUF_RECORDS_RO) < 0) return NULL;
    got = 1;
    if (PyObject_GetBuffer(dst, &d, PyBUF_RECORDS) < 0) goto fail;
    got = 2;
    if (PyObject_GetBuffer(matrix, &m, PyBUF_RECORDS_RO) < 0) goto fail;
    got = 3;
    if (has_offset) {
        if (PyObject_GetBuffer(offset_arg, &o, PyBUF_RECORDS_RO) < 0) goto fail;
        got = 4;
    }
    int kind = float_kind(&s);
    int ok = kind && float_kind(&d) == kind && float_kind(&m) == kind && planes_ok(&s) && planes_ok(&d) && s.shape[0] == d.shape[0] &&
             s.shape[2] == d.shape[2] && m.ndim == 3 && m.shape[0] == s.shape[0] && m.shape[1] == 3 && m.shape[2] == 3 &&
             start >= 0 && stop >= start && stop <= s.shape[2];
    if (ok && has_offset) ok = float_kind(&o) == kind && o.ndim == 2 && o.shape[0] == s.shape[0] && o.shape[1] == 3;
    int same = s.buf == d.buf && s.strides[0] == d.strides[0] && s.strides[1] == d.strides[1]; /* in place: a chunk read before written */
    if (ok && !same && s.shape[0] > 0 && s.shape[2] > 0) { /* else the spans of src and dst are apart (strides are >= 0) */
        const char *s_hi = at(&s, s.shape[0] - 1, 2) + s.shape[2] * s.itemsize, *d_hi = at(&d, d.shape[0] - 1, 2) + d.shape[2] * d.itemsize;
        ok = d_hi <= (const char *)s.buf || s_hi <= (const char *)d.buf;
    }
    if (ok && same && s.shape[0] > 0) /* in place, the channels apart from one another: a plane or more between them */
        ok = s.strides[1] >= s.shape[2] * s.itemsize && (s.shape[0] == 1 || s.strides[0] >= 3 * s.strides[1]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "_color: bad arguments");
        goto fail;
    }
    Py_ssize_t images = s.shape[0];
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < images; i++) {
        double mm[9], oo[3];
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++) {
                const char *e = (const char *)m.buf + i * m.strides[0] + r * m.strides[1] + c * m.strides[2];
                mm[3 * r + c] = kind == 2 ? *(const double *)e : *(const float *)e;
            }
            if (has_offset) {
                const char *e = (const char *)o.buf + i * o.strides[0] + r * o.strides[1];
                oo[r] = kind == 2 ? *(const double *)e : *(const float *)e;
            }
        }
        if (kind == 2) {
            apply_f64((const double *)at(&s, i, 0), (const double *)at(&s, i, 1), (const double *)at(&s, i, 2), (double *)at(&d, i, 0),
                      (double *)at(&d, i, 1), (double *)at(&d, i, 2), mm, has_offset ? oo : NULL, &post, start, stop);
        } else { /* the float32 values, widened and narrowed again exactly */
            float mf[9], of[3];
            for (int k = 0; k < 9; k++) mf[k] = (float)mm[k];
            for (int k = 0; k < 3; k++) of[k] = (float)oo[k];
            apply_f32((const float *)at(&s, i, 0), (const float *)at(&s, i, 1), (const float *)at(&s, i, 2), (float *)at(&d, i, 0),
                      (float *)at(&d, i, 1), (float *)at(&d, i, 2), mf, has_offset ? of : NULL, &post, start, stop);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&s);
    PyBuffer_Release(&d);
    PyBuffer_Release(&m);
    if (has_offset) PyBuffer_Release(&o);
    Py_RETURN_NONE;
fail:
    if (got >= 1) PyBuffer_Release(&s);
    if (got >= 2) PyBuffer_Release(&d);
    if (got >= 3) PyBuffer_Release(&m);
    if (got >= 4) PyBuffer_Release(&o);
    return NULL;
}

static PyMethodDef methods[] = {
    {"apply", apply, METH_VARARGS,
     "apply(src, dst, matrix, offset, start, stop, post=None): dst[b, c] = M[b, c, 0] src[b, 0] + M[b, c, 1] src[b, 1] + M[b, c, 2] src[b, 2] "
     "(+ offset[b, c]) for pixels [start, stop), in that order of IEEE operations; post=(rounded, lo, hi, divisor): then rounded "
     "half to even, clamped to [lo, hi] and divided by divisor (None: not divided)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_color", "Compiled loop of diffjpeg.stages.color's real-valued conversion.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__color(void) { return PyModule_Create(&module); }
