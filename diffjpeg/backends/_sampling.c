/*
 * The real-valued chroma sampling stages as compiled loops over planes:
 * float and soft mode's upsampling, and the transposes that every mode's
 * gradient runs through.
 *
 * sampling.py defines these stages as tensor operations. Each loop here
 * performs, on each element, the same IEEE operations in the same order
 * (every product and sum rounded on its own: built with -ffp-contract=off,
 * so that no FMA fuses what the tensor operations round apart), so the
 * values are the tensor operations', bit for bit (tests/backends/test_exact.py),
 * in one pass over a plane instead of five to nine:
 *
 *   downsample          the window sums in avg_pool2d's order (_window_sums),
 *                       then libjpeg's biases, / count and floor
 *                       (_biased_average), or / count alone (soft)
 *   upsample            the triangle filter (_triangle) down the columns,
 *                       then along the rows, as sampling._FANCY orders the
 *                       dimensions; then libjpeg's biases, 1/scale and
 *                       floor (_fancy_biased), or 1/scale alone (soft)
 *   upsample_adjoint    its transpose (_triangle_adjoint): along the rows,
 *                       then down the columns, then 1/scale
 *   downsample_adjoint  the window mean's transpose: each gradient divided
 *                       by the window's size, spread over the window
 *   merged              upsample for each output row, then the decoder's
 *                       color conversion with its rounding, clamp and
 *                       division by 255 (_color.c's steps), in one pass
 *   merged_adjoint      its transpose (the color conversion's, then the
 *                       upsampler's and the crops'), in one pass
 *   encoder             the encoder's samples (x 255, rounded, clamped),
 *                       color conversion and downsampling, in one pass
 *
 * Planes are (N, rows, columns) buffers of float32 or float64 whose rows
 * are contiguous; any plane and row strides (views of stacked planes).
 * native.py decides when this applies and splits the work among threads:
 * each call takes planes [start, stop) and, of each, the rows [first, last)
 * of the smaller plane (the downsampled one), and releases the GIL. Every
 * shape, stride, format and range is checked before a loop runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>

/* HOT: AVX2 gives the loops vector floor (libjpeg's rounding), which
 * baseline x86-64 lacks (a library call per sample there) */
#include "_loops.h"

typedef struct {
    Py_buffer src, dst;
    int have_src, have_dst;
} Buffers;

static void release(Buffers *b)
{
    if (b->have_src) PyBuffer_Release(&b->src);
    if (b->have_dst) PyBuffer_Release(&b->dst);
}

/* Gets both buffers and checks: 3 dimensions, one float kind, contiguous
 * rows, non-negative strides that are whole elements, dst's shape
 * (N, src rows * ry, src columns * rx) (ry, rx: dst's size over src's, 1 or 2),
 * or src's the same way over dst's if `shrink`, 0 <= start <= stop <= N and
 * 0 <= first <= last <= the smaller plane's rows. */
static int get_buffers(PyObject *src, PyObject *dst, int rx, int ry, int shrink, Py_ssize_t start, Py_ssize_t stop,
                       Py_ssize_t first, Py_ssize_t last, Buffers *b)
{
    b->have_src = b->have_dst = 0;
    if (PyObject_GetBuffer(src, &b->src, PyBUF_RECORDS_RO) < 0) return -1;
    b->have_src = 1;
    if (PyObject_GetBuffer(dst, &b->dst, PyBUF_RECORDS) < 0) return -1;
    b->have_dst = 1;
    const Py_buffer *s = &b->src, *d = &b->dst;
    int kind = float_kind(s);
    if (kind == 0 || float_kind(d) != kind || s->ndim != 3 || d->ndim != 3) goto bad;
    const Py_buffer *small = shrink ? d : s, *large = shrink ? s : d;
    if (rx < 1 || rx > 2 || ry < 1 || ry > 2 || large->shape[0] != small->shape[0] || large->shape[1] != small->shape[1] * ry ||
        large->shape[2] != small->shape[2] * rx || small->shape[1] < 1 || small->shape[2] < 1)
        goto bad;
    for (int i = 0; i < 3; i++) {
        if (s->strides[i] < 0 || d->strides[i] < 0 || s->strides[i] % s->itemsize || d->strides[i] % d->itemsize) goto bad;
    }
    if (s->strides[2] != s->itemsize || d->strides[2] != d->itemsize || start < 0 || stop < start || stop > s->shape[0] ||
        first < 0 || last < first || last > small->shape[1])
        goto bad;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "_sampling: bad buffers");
    return -1;
}

/* ------------------------------------------------------------ the loops, per element type */
#define DEFINE_LOOPS(T, SUFFIX, FLOOR)                                                                                      \
    /* _triangle along one row: out[2j] = 3 x[j] + x[j-1], out[2j+1] = 3 x[j] + x[j+1], edges repeated */                \
    static inline __attribute__((always_inline)) void triangle_row_##SUFFIX(const T *x, T *out, Py_ssize_t n)                                                     \
    {                                                                                                                       \
        /* the edges apart, so that the loop between them has no branch and vectorizes */                              \
        T near = (T)3 * x[0];                                                                                               \
        out[0] = near + x[0];                                                                                               \
        out[1] = near + x[n > 1 ? 1 : 0];                                                                                   \
        for (Py_ssize_t j = 1; j < n - 1; j++) {                                                                            \
            T mid = (T)3 * x[j];                                                                                            \
            out[2 * j] = mid + x[j - 1];                                                                                    \
            out[2 * j + 1] = mid + x[j + 1];                                                                                \
        }                                                                                                                   \
        if (n > 1) {                                                                                                        \
            near = (T)3 * x[n - 1];                                                                                         \
            out[2 * n - 2] = near + x[n - 2];                                                                               \
            out[2 * n - 1] = near + x[n - 1];                                                                               \
        }                                                                                                                   \
    }                                                                                                                       \
    /* the last step along a row of 2n: + libjpeg's biases (by column), x 1/scale, floor (biased), or x 1/scale (soft);   \
       a second pass over a row still in cache, by pairs of columns: no branch in the loop, which vectorizes */             \
    static inline __attribute__((always_inline)) void finish_row_##SUFFIX(T *row, Py_ssize_t n, int biased, T even_bias, T odd_bias, T inverse)                   \
    {                                                                                                                       \
        if (!biased) {                                                                                                      \
            for (Py_ssize_t j = 0; j < 2 * n; j++) row[j] = row[j] * inverse;                                               \
            return;                                                                                                         \
        }                                                                                                                   \
        for (Py_ssize_t j = 0; j < n; j++) {                                                                                \
            row[2 * j] = FLOOR((row[2 * j] + even_bias) * inverse);                                                         \
            row[2 * j + 1] = FLOOR((row[2 * j + 1] + odd_bias) * inverse);                                                  \
        }                                                                                                                   \
    }                                                                                                                       \
    /* _triangle down the columns for input row i of n: the output rows 2i and 2i+1 */                                     \
    static void triangle_column_##SUFFIX(const T *row, const T *above, const T *below, T *even, T *odd, Py_ssize_t w)      \
    {                                                                                                                       \
        for (Py_ssize_t j = 0; j < w; j++) {                                                                                \
            T near = (T)3 * row[j];                                                                                         \
            even[j] = near + above[j];                                                                                      \
            odd[j] = near + below[j];                                                                                       \
        }                                                                                                                   \
    }                                                                                                                       \
    /* the downsampled row from rows top (and bottom, ry = 2) into out[0 .. n), then its last value repeated to `wide` */ \
    static inline __attribute__((always_inline)) void down_row_##SUFFIX(const T *restrict top, const T *restrict bottom,   \
        T *restrict out, Py_ssize_t n, Py_ssize_t wide, int rx, int ry, int biased)                                        \
    {                                                                                                                       \
        const T count = (T)(rx * ry);                                                                                       \
        const T even_bias = (rx == 2 && ry == 2) ? (T)1 : (rx == 2 ? (T)0 : (T)1);                                          \
        const T odd_bias = (rx == 2 && ry == 2) ? (T)2 : (T)1;                                                              \
        if (rx == 1 && ry == 1)                                                                                             \
            memcpy(out, top, (size_t)n * sizeof(T));                                                                        \
        else {                                                                                                              \
            for (Py_ssize_t j = 0; j < n; j++) {                                                                            \
                T sum;                                                                                                      \
                if (rx == 2 && ry == 2) {                                                                                   \
                    sum = top[2 * j] + top[2 * j + 1];                                                                      \
                    sum = sum + bottom[2 * j];                                                                              \
                    sum = sum + bottom[2 * j + 1];                                                                          \
                } else if (rx == 2) {                                                                                       \
                    sum = top[2 * j] + top[2 * j + 1];                                                                      \
                } else {                                                                                                    \
                    sum = top[j] + bottom[j];                                                                               \
                }                                                                                                           \
                out[j] = sum;                                                                                               \
            }                                                                                                               \
            if (biased) {                                                                                                   \
                Py_ssize_t j = 0;                                                                                           \
                for (; j + 1 < n; j += 2) {                                                                                 \
                    out[j] = FLOOR((out[j] + even_bias) / count);                                                           \
                    out[j + 1] = FLOOR((out[j + 1] + odd_bias) / count);                                                    \
                }                                                                                                           \
                if (j < n) out[j] = FLOOR((out[j] + even_bias) / count);                                                    \
            } else {                                                                                                        \
                for (Py_ssize_t j = 0; j < n; j++) out[j] = out[j] / count;                                                 \
            }                                                                                                               \
        }                                                                                                                   \
        for (Py_ssize_t j = n; j < wide; j++) out[j] = out[n - 1];                                                          \
    }                                                                                                                       \
    /* the window sums ((a + b) + c) + d, rows of the window in turn, then (sum + bias) / count, floored (libjpeg's      \
       biases: 1, 2 by column for h2v2, 0, 1 for h2v1, 1 for h1v2), or sum / count */                                      \
    HOT static int downsample_##SUFFIX(const Py_buffer *s, const Py_buffer *d, int rx, int ry, int biased, Py_ssize_t start,   \
                                   Py_ssize_t stop, Py_ssize_t first, Py_ssize_t last)                                      \
    {                                                                                                                       \
        const Py_ssize_t w = d->shape[2];                                                                                   \
        const Py_ssize_t sp = s->strides[0] / (Py_ssize_t)sizeof(T), sr = s->strides[1] / (Py_ssize_t)sizeof(T);           \
        const Py_ssize_t dp = d->strides[0] / (Py_ssize_t)sizeof(T), dr = d->strides[1] / (Py_ssize_t)sizeof(T);           \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            for (Py_ssize_t i = first; i < last; i++) {                                                                     \
                const T *top = (const T *)s->buf + p * sp + ry * i * sr, *bottom = top + sr;                               \
                down_row_##SUFFIX(top, bottom, (T *)d->buf + p * dp + i * dr, w, w, rx, ry, biased);                        \
            }                                                                                                               \
        }                                                                                                                   \
        return 0;                                                                                                           \
    }                                                                                                                       \
    HOT static int upsample_##SUFFIX(const Py_buffer *s, const Py_buffer *d, int rx, int ry, int biased, Py_ssize_t start,     \
                                 Py_ssize_t stop, Py_ssize_t first, Py_ssize_t last)                                        \
    {                                                                                                                       \
        const Py_ssize_t h = s->shape[1], w = s->shape[2];                                                                  \
        const Py_ssize_t sp = s->strides[0] / (Py_ssize_t)sizeof(T), sr = s->strides[1] / (Py_ssize_t)sizeof(T);           \
        const Py_ssize_t dp = d->strides[0] / (Py_ssize_t)sizeof(T), dr = d->strides[1] / (Py_ssize_t)sizeof(T);           \
        /* sampling._FANCY: scale 16 and biases 8, 7 (per column) for h2v2, else 4 and 1, 2 (h2v1: per column,           \
           h1v2: per row) */                                                                                                \
        const T inverse = (rx == 2 && ry == 2) ? (T)(1.0 / 16.0) : (T)0.25;                                                 \
        const T even_bias = (rx == 2 && ry == 2) ? (T)8 : (T)1, odd_bias = (rx == 2 && ry == 2) ? (T)7 : (T)2;             \
        T *column = NULL;                                                                                                   \
        if (rx == 2 && ry == 2) {                                                                                           \
            column = (T *)malloc(2 * (size_t)w * sizeof(T));                                                                \
            if (!column) return -1;                                                                                         \
        }                                                                                                                   \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            const T *x = (const T *)s->buf + p * sp;                                                                        \
            T *y = (T *)d->buf + p * dp;                                                                                    \
            for (Py_ssize_t i = first; i < last; i++) {                                                                     \
                const T *row = x + i * sr, *above = x + (i > 0 ? i - 1 : 0) * sr, *below = x + (i + 1 < h ? i + 1 : h - 1) * sr; \
                if (rx == 2 && ry == 2) {                                                                                   \
                    triangle_column_##SUFFIX(row, above, below, column, column + w, w);                                     \
                    for (int k = 0; k < 2; k++) {                                                                           \
                        T *out = y + (2 * i + k) * dr;                                                                      \
                        triangle_row_##SUFFIX(column + k * w, out, w);                                                      \
                        finish_row_##SUFFIX(out, w, biased, even_bias, odd_bias, inverse);                                  \
                    }                                                                                                       \
                } else if (rx == 2) {                                                                                       \
                    T *out = y + i * dr;                                                                                    \
                    triangle_row_##SUFFIX(row, out, w);                                                                     \
                    finish_row_##SUFFIX(out, w, biased, even_bias, odd_bias, inverse);                                      \
                } else {                                                                                                    \
                    T *even = y + 2 * i * dr, *odd = y + (2 * i + 1) * dr;                                                  \
                    triangle_column_##SUFFIX(row, above, below, even, odd, w);                                              \
                    /* h1v2's biases go by row: the whole even row gets 1, the odd row 2 */                                 \
                    if (biased) {                                                                                           \
                        for (Py_ssize_t j = 0; j < w; j++) even[j] = FLOOR((even[j] + even_bias) * inverse);                \
                        for (Py_ssize_t j = 0; j < w; j++) odd[j] = FLOOR((odd[j] + odd_bias) * inverse);                   \
                    } else {                                                                                                \
                        for (Py_ssize_t j = 0; j < w; j++) even[j] = even[j] * inverse;                                     \
                        for (Py_ssize_t j = 0; j < w; j++) odd[j] = odd[j] * inverse;                                       \
                    }                                                                                                       \
                }                                                                                                           \
            }                                                                                                               \
        }                                                                                                                   \
        free(column);                                                                                                       \
        return 0;                                                                                                           \
    }                                                                                                                       \
    /* _triangle_adjoint of n pairs (e[j], o[j]) at stride 2 step apart: out[j] = 3 (e[j] + o[j]), then + e[j+1]     \
       (j < n-1), then + o[j-1] (j > 0), then + e[0] (j = 0), then + o[n-1] (j = n-1): the order of its passes */        \
    static void triangle_adjoint_##SUFFIX(const T *g, Py_ssize_t step, T *out, Py_ssize_t n)                               \
    {                                                                                                                       \
        for (Py_ssize_t j = 0; j < n; j++) {                                                                                \
            const T *e = g + 2 * j * step, *o = e + step;                                                                   \
            T v = (e[0] + o[0]) * (T)3;                                                                                     \
            if (j + 1 < n) v = v + e[2 * step];                                                                             \
            if (j > 0) v = v + o[-2 * step];                                                                                \
            if (j == 0) v = v + e[0];                                                                                       \
            if (j == n - 1) v = v + o[0];                                                                                   \
            out[j] = v;                                                                                                     \
        }                                                                                                                   \
    }                                                                                                                       \
    /* the same down the columns, for output row i of n: its pair's rows e, o, the next pair's even row (NULL for the \
       last pair), the previous pair's odd row (NULL for the first) */                                                      \
    static void triangle_adjoint_rows_##SUFFIX(const T *e, const T *o, const T *next_e, const T *prev_o, T *out,           \
                                               Py_ssize_t i, Py_ssize_t n, Py_ssize_t w)                                    \
    {                                                                                                                       \
        for (Py_ssize_t j = 0; j < w; j++) {                                                                                \
            T v = (e[j] + o[j]) * (T)3;                                                                                     \
            if (i + 1 < n) v = v + next_e[j];                                                                               \
            if (i > 0) v = v + prev_o[j];                                                                                   \
            if (i == 0) v = v + e[j];                                                                                       \
            if (i == n - 1) v = v + o[j];                                                                                   \
            out[j] = v;                                                                                                     \
        }                                                                                                                   \
    }                                                                                                                       \
    /* output row i of n from rows at `rows` (row r at rows + (r - top) * stride) */                                       \
    static void adjoint_row_##SUFFIX(const T *rows, Py_ssize_t top, Py_ssize_t stride, T *out, Py_ssize_t i, Py_ssize_t n,  \
                                     Py_ssize_t w)                                                                          \
    {                                                                                                                       \
        const T *e = rows + (2 * i - top) * stride, *o = e + stride;                                                        \
        triangle_adjoint_rows_##SUFFIX(e, o, i + 1 < n ? o + stride : NULL, i > 0 ? e - stride : NULL, out, i, n, w);       \
    }                                                                                                                       \
    HOT static int upsample_adjoint_##SUFFIX(const Py_buffer *s, const Py_buffer *d, int rx, int ry, Py_ssize_t start,          \
                                         Py_ssize_t stop, Py_ssize_t first, Py_ssize_t last)                                \
    {                                                                                                                       \
        const Py_ssize_t H = s->shape[1], h = d->shape[1], w = d->shape[2];                                                 \
        const Py_ssize_t sp = s->strides[0] / (Py_ssize_t)sizeof(T), sr = s->strides[1] / (Py_ssize_t)sizeof(T);           \
        const Py_ssize_t dp = d->strides[0] / (Py_ssize_t)sizeof(T), dr = d->strides[1] / (Py_ssize_t)sizeof(T);           \
        const T inverse = (rx == 2 && ry == 2) ? (T)(1.0 / 16.0) : (T)0.25;                                                 \
        (void)H;                                                                                                            \
        /* h2v2: the pass along the rows, for the rows the pass down the columns reads: output rows [first, last)          \
           read rows 2 first - 1 to 2 last, within the plane */                                                             \
        const Py_ssize_t top = first > 0 ? 2 * first - 1 : 0, bottom = 2 * last + 1 < H ? 2 * last + 1 : H;                \
        T *rows = NULL;                                                                                                     \
        if (rx == 2 && ry == 2) {                                                                                           \
            rows = (T *)malloc((size_t)(bottom - top) * (size_t)w * sizeof(T) + sizeof(T));                                \
            if (!rows) return -1;                                                                                           \
        }                                                                                                                   \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            const T *g = (const T *)s->buf + p * sp;                                                                        \
            T *y = (T *)d->buf + p * dp;                                                                                    \
            if (rx == 2 && ry == 2) {                                                                                       \
                for (Py_ssize_t r = top; r < bottom; r++) triangle_adjoint_##SUFFIX(g + r * sr, 1, rows + (r - top) * w, w); \
                for (Py_ssize_t i = first; i < last; i++) adjoint_row_##SUFFIX(rows, top, w, y + i * dr, i, h, w);         \
            } else if (rx == 2) {                                                                                           \
                for (Py_ssize_t r = first; r < last; r++) triangle_adjoint_##SUFFIX(g + r * sr, 1, y + r * dr, w);          \
            } else {                                                                                                        \
                for (Py_ssize_t i = first; i < last; i++) adjoint_row_##SUFFIX(g, 0, sr, y + i * dr, i, h, w);             \
            }                                                                                                               \
            for (Py_ssize_t i = first; i < last; i++) {                                                                     \
                T *out = y + i * dr;                                                                                        \
                for (Py_ssize_t j = 0; j < w; j++) out[j] = out[j] * inverse;                                               \
            }                                                                                                               \
        }                                                                                                                   \
        free(rows);                                                                                                         \
        return 0;                                                                                                           \
    }                                                                                                                       \
    HOT static int downsample_adjoint_##SUFFIX(const Py_buffer *s, const Py_buffer *d, int rx, int ry, Py_ssize_t start,        \
                                           Py_ssize_t stop, Py_ssize_t first, Py_ssize_t last)                              \
    {                                                                                                                       \
        const Py_ssize_t w = s->shape[2];                                                                                   \
        const Py_ssize_t sp = s->strides[0] / (Py_ssize_t)sizeof(T), sr = s->strides[1] / (Py_ssize_t)sizeof(T);           \
        const Py_ssize_t dp = d->strides[0] / (Py_ssize_t)sizeof(T), dr = d->strides[1] / (Py_ssize_t)sizeof(T);           \
        const T count = (T)(rx * ry);                                                                                       \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            for (Py_ssize_t i = first; i < last; i++) {                                                                     \
                const T *g = (const T *)s->buf + p * sp + i * sr;                                                           \
                for (int k = 0; k < ry; k++) {                                                                              \
                    T *out = (T *)d->buf + p * dp + (ry * i + k) * dr;                                                      \
                    if (rx == 2) {                                                                                          \
                        for (Py_ssize_t j = 0; j < w; j++) out[2 * j] = out[2 * j + 1] = g[j] / count;                      \
                    } else {                                                                                                \
                        for (Py_ssize_t j = 0; j < w; j++) out[j] = g[j] / count;                                           \
                    }                                                                                                       \
                }                                                                                                           \
            }                                                                                                               \
        }                                                                                                                   \
        return 0;                                                                                                           \
    }

DEFINE_LOOPS(float, f32, floorf)
DEFINE_LOOPS(double, f64, floor)

/* ------------------------------------------------------------ merged: upsampling and color conversion in one pass
 * jdmerge.c's idea for the real-valued decoder (planes.py's pixels): each output row's chroma is upsampled
 * into a row buffer (the upsample loop's operations above, for that row only) and converted with the luma
 * row at once, rounded (float mode), clamped and divided by 255, as _color.c's pass with its post steps:
 *   out[c] = post(((M[c][0] Y + M[c][1] Cb) + M[c][2] Cr) + shift[c])
 * so the pixels are those of the upsample pass and then the color pass, bit for bit, without the
 * full-size chroma planes between them. */
#define DEFINE_MERGED(T, SUFFIX, RINT, FLOOR)                                                                               \
    /* a sample rounded (float mode) and clamped to [0, 255]: _rounding.c's and _color.c's steps */                     \
    static inline __attribute__((always_inline)) T clamped_##SUFFIX(T v, int rounded)                                      \
    {                                                                                                                       \
        if (rounded) v = RINT(v);                                                                                           \
        v = v < (T)0 ? (T)0 : v;                                                                                            \
        return v > (T)255 ? (T)255 : v;                                                                                     \
    }                                                                                                                       \
    /* row r of the plane x (h rows of w, rows xr apart) upsampled by (rx, ry) into out (rx w values), through col */    \
    static inline __attribute__((always_inline)) const T *chroma_row_##SUFFIX(const T *x, Py_ssize_t xr, Py_ssize_t h, Py_ssize_t w, Py_ssize_t r, int rx, int ry, \
                                        int biased, T *col, T *out)                                                         \
    {                                                                                                                       \
        const T *row = x + r * xr;                                                                                          \
        if (ry == 2) { /* _triangle down the columns: 3 x[i] + x[i -+ 1] for the even (odd) output row */                \
            const Py_ssize_t i = r >> 1, k = (r & 1) ? (i + 1 < h ? i + 1 : h - 1) : (i > 0 ? i - 1 : 0);                   \
            const T *here = x + i * xr, *other = x + k * xr;                                                                \
            for (Py_ssize_t j = 0; j < w; j++) col[j] = (T)3 * here[j] + other[j];                                          \
            row = col;                                                                                                      \
        }                                                                                                                   \
        if (rx == 2) {                                                                                                      \
            triangle_row_##SUFFIX(row, out, w);                                                                             \
            if (ry == 2)                                                                                                    \
                finish_row_##SUFFIX(out, w, biased, (T)8, (T)7, (T)(1.0 / 16.0));                                           \
            else                                                                                                            \
                finish_row_##SUFFIX(out, w, biased, (T)1, (T)2, (T)0.25);                                                   \
            return out;                                                                                                     \
        }                                                                                                                   \
        if (ry == 2) { /* h1v2's biases go by row: 1 for the even row, 2 for the odd */                                    \
            const T bias = (r & 1) ? (T)2 : (T)1;                                                                          \
            if (biased)                                                                                                     \
                for (Py_ssize_t j = 0; j < w; j++) out[j] = FLOOR((col[j] + bias) * (T)0.25);                              \
            else                                                                                                            \
                for (Py_ssize_t j = 0; j < w; j++) out[j] = col[j] * (T)0.25;                                              \
            return out;                                                                                                     \
        }                                                                                                                   \
        return row; /* not upsampled */                                                                                     \
    }                                                                                                                       \
    HOT static int merged_##SUFFIX(const Py_buffer *b, const T m[9], const T shift[3], int rx, int ry, int rounded,          \
                                   Py_ssize_t start, Py_ssize_t stop, Py_ssize_t first, Py_ssize_t last)                    \
    {                                                                                                                       \
        const Py_buffer *Y = &b[0], *cb = &b[1], *cr = &b[2], *d = &b[3];                                                   \
        const Py_ssize_t h = cb->shape[1], w = cb->shape[2], W = d->shape[3];                                               \
        T *buffer = (T *)malloc((size_t)(6 * w + 2) * sizeof(T));                                                          \
        if (!buffer) return -1;                                                                                             \
        T *col = buffer, *up[2] = {buffer + w, buffer + 3 * w + 1};                                                         \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            const T *planes[2] = {(const T *)((const char *)cb->buf + p * cb->strides[0]),                                \
                                  (const T *)((const char *)cr->buf + p * cr->strides[0])};                               \
            const Py_ssize_t xr[2] = {cb->strides[1] / (Py_ssize_t)sizeof(T), cr->strides[1] / (Py_ssize_t)sizeof(T)};     \
            for (Py_ssize_t r = first; r < last; r++) {                                                                     \
                const T *luma = (const T *)((const char *)Y->buf + p * Y->strides[0] + r * Y->strides[1]);                 \
                const T *u = chroma_row_##SUFFIX(planes[0], xr[0], h, w, r, rx, ry, !!rounded, col, up[0]);              \
                const T *v = chroma_row_##SUFFIX(planes[1], xr[1], h, w, r, rx, ry, !!rounded, col, up[1]);              \
                const T *restrict yy = luma, *restrict uu = u, *restrict vv = v; /* out lies apart (checked) */          \
                for (int c = 0; c < 3; c++) {                                                                               \
                    T *restrict out = (T *)((char *)d->buf + p * d->strides[0] + c * d->strides[1] + r * d->strides[2]);   \
                    const T a = m[3 * c], bb = m[3 * c + 1], e = m[3 * c + 2], o = shift[c];                                \
                    for (Py_ssize_t j = 0; j < W; j++)                                                                      \
                        out[j] = clamped_##SUFFIX(((a * yy[j] + bb * uu[j]) + e * vv[j]) + o, rounded) / (T)255;           \
                }                                                                                                           \
            }                                                                                                               \
        }                                                                                                                   \
        free(buffer);                                                                                                       \
        return 0;                                                                                                           \
    }
DEFINE_MERGED(float, f32, nearbyintf, floorf)
DEFINE_MERGED(double, f64, nearbyint, floor)

/* ------------------------------------------------------------ the encoder's side merged: samples, color and downsampling
 * planes.py's sampled_planes in one pass: each needed image row scaled by 255, rounded (float mode) and clamped
 * (_rounding.c's steps, its range check from the same read), converted to YCbCr, rounded and clamped (_color.c's),
 * kept in row buffers with its last column repeated; luma written to its whole-block plane, each downsampled chroma
 * row from its v rows (the downsample loop's sums, biases and division above), edges repeated as blocks.py's
 * replicate_edges does around it. Output row ranges [first, last) of the downsampled rows d (< the padded height
 * / v) are one call's: luma rows v d .. v d + v - 1 and chroma row d; the edge rows below, with the last range. */
#define DEFINE_ENCODER(T, SUFFIX, RINT, FLOOR)                                                                              \
    /* image row `src` of plane p into buf[0..2] (wide values each; columns from W on repeat the last); 0 where an input \
       lies outside [low, high] or is NaN */                                                                                \
    static inline __attribute__((always_inline)) int color_row_##SUFFIX(const Py_buffer *x, Py_ssize_t p, Py_ssize_t src,  \
        T *restrict buf0, T *restrict buf1, T *restrict buf2, Py_ssize_t wide, const T m[9], const T o[3], int rounded,    \
        T low, T high)                                                                                                      \
    {                                                                                                                       \
        const Py_ssize_t W = x->shape[3];                                                                                   \
        const char *row = (const char *)x->buf + p * x->strides[0] + src * x->strides[2];                                  \
        const T *restrict r = (const T *)row, *restrict g = (const T *)(row + x->strides[1]),                              \
                *restrict b = (const T *)(row + 2 * x->strides[1]);                                                         \
        int inside = 1;                                                                                                     \
        for (Py_ssize_t j = 0; j < W; j++) {                                                                                \
            T u = r[j], v = g[j], w = b[j];                                                                                 \
            inside &= (u >= low) & (u <= high) & (v >= low) & (v <= high) & (w >= low) & (w <= high);                      \
            u = clamped_##SUFFIX(u * (T)255, rounded);                                                                      \
            v = clamped_##SUFFIX(v * (T)255, rounded);                                                                      \
            w = clamped_##SUFFIX(w * (T)255, rounded);                                                                      \
            buf0[j] = clamped_##SUFFIX(((m[0] * u + m[1] * v) + m[2] * w) + o[0], rounded);                                \
            buf1[j] = clamped_##SUFFIX(((m[3] * u + m[4] * v) + m[5] * w) + o[1], rounded);                                \
            buf2[j] = clamped_##SUFFIX(((m[6] * u + m[7] * v) + m[8] * w) + o[2], rounded);                                \
        }                                                                                                                   \
        for (Py_ssize_t j = W; j < wide; j++) {                                                                             \
            buf0[j] = buf0[W - 1];                                                                                          \
            buf1[j] = buf1[W - 1];                                                                                          \
            buf2[j] = buf2[W - 1];                                                                                          \
        }                                                                                                                   \
        return inside;                                                                                                      \
    }                                                                                                                       \
    static inline __attribute__((always_inline)) T *plane_row_##SUFFIX(const Py_buffer *b, Py_ssize_t p, Py_ssize_t i)    \
    {                                                                                                                       \
        return (T *)((char *)b->buf + p * b->strides[0] + i * b->strides[1]);                                              \
    }                                                                                                                       \
    /* b: x (N, 3, H, W), luma (N, LH, LW), cb and cr (N, CH, CW); padded (ph, pw): the image's size with its edges \
       repeated before downsampling; returns 1, 0 where an input lies outside [low, high], -1 without memory */        \
    HOT static int encoder_##SUFFIX(const Py_buffer *b, const T m[9], const T o[3], int rx, int ry, Py_ssize_t ph,          \
        Py_ssize_t pw, int rounded, T low, T high, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t first, Py_ssize_t last)   \
    {                                                                                                                       \
        const Py_buffer *x = &b[0], *luma = &b[1], *cb = &b[2], *cr = &b[3];                                                \
        const Py_ssize_t H = x->shape[2], LH = luma->shape[1], LW = luma->shape[2], CH = cb->shape[1], CW = cb->shape[2];  \
        const Py_ssize_t dh = ph / ry, dw = pw / rx, wide = pw > LW ? pw : LW;                                             \
        T *buffer = (T *)malloc((size_t)(6 * wide + 1) * sizeof(T));                                                       \
        if (!buffer) return -1;                                                                                             \
        T *rows[2][3] = {{buffer, buffer + wide, buffer + 2 * wide}, {buffer + 3 * wide, buffer + 4 * wide, buffer + 5 * wide}}; \
        int inside = 1;                                                                                                     \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            for (Py_ssize_t d = first; d < last; d++) {                                                                     \
                for (int k = 0; k < ry; k++) {                                                                              \
                    const Py_ssize_t r = ry * d + k, src = r < H ? r : H - 1;                                               \
                    inside &= color_row_##SUFFIX(x, p, src, rows[k][0], rows[k][1], rows[k][2], wide, m, o, rounded, low, high); \
                    if (r < LH) memcpy(plane_row_##SUFFIX(luma, p, r), rows[k][0], (size_t)LW * sizeof(T));                 \
                }                                                                                                           \
                const int bottom = ry == 2 ? 1 : 0;                                                                         \
                down_row_##SUFFIX(rows[0][1], rows[bottom][1], plane_row_##SUFFIX(cb, p, d), dw, CW, rx, ry, rounded);      \
                down_row_##SUFFIX(rows[0][2], rows[bottom][2], plane_row_##SUFFIX(cr, p, d), dw, CW, rx, ry, rounded);      \
            }                                                                                                               \
            if (last == dh) { /* the edge rows below: the last row again */                                                 \
                for (Py_ssize_t r = ph; r < LH; r++)                                                                        \
                    memcpy(plane_row_##SUFFIX(luma, p, r), plane_row_##SUFFIX(luma, p, ph - 1), (size_t)LW * sizeof(T));   \
                for (Py_ssize_t d = dh; d < CH; d++) {                                                                      \
                    memcpy(plane_row_##SUFFIX(cb, p, d), plane_row_##SUFFIX(cb, p, dh - 1), (size_t)CW * sizeof(T));       \
                    memcpy(plane_row_##SUFFIX(cr, p, d), plane_row_##SUFFIX(cr, p, dh - 1), (size_t)CW * sizeof(T));       \
                }                                                                                                           \
            }                                                                                                               \
        }                                                                                                                   \
        free(buffer);                                                                                                       \
        return inside;                                                                                                      \
    }
DEFINE_ENCODER(float, f32, nearbyintf, floorf)
DEFINE_ENCODER(double, f64, nearbyint, floor)

/* ------------------------------------------------------------ the merged pass's transpose
 * planes.py's ycc_grad and sampled_grad in one pass: each image row's gradient through the color conversion's
 * transpose (m: the transposed matrix, / 255 folded in, as _color.c computes it), luma's straight into its
 * whole-block plane, the chroma's along the rows (the upsampler's transpose, above) into a buffer of the image's
 * rows, then down the columns and x 1/scale into their planes; zeros where the image's crops put none (rows and
 * columns beyond it). */
#define DEFINE_MERGED_ADJOINT(T, SUFFIX)                                                                                    \
    HOT static int merged_adjoint_##SUFFIX(const Py_buffer *b, const T m[9], int rx, int ry, Py_ssize_t dh, Py_ssize_t dw,  \
                                           Py_ssize_t start, Py_ssize_t stop)                                               \
    {                                                                                                                       \
        const Py_buffer *g = &b[0], *luma = &b[1], *cb = &b[2], *cr = &b[3];                                                \
        const Py_ssize_t H = g->shape[2], W = g->shape[3], LH = luma->shape[1], LW = luma->shape[2], CH = cb->shape[1],     \
                         CW = cb->shape[2], rows = ry * dh, wide = rx * dw;                                                 \
        const T inverse = (rx == 2 && ry == 2) ? (T)(1.0 / 16.0) : (T)0.25;                                                 \
        T *line = (T *)malloc((size_t)(3 * wide) * sizeof(T));                                                              \
        T *along = (T *)malloc((size_t)(2 * rows * dw + 1) * sizeof(T));                                                    \
        if (!line || !along) {                                                                                              \
            free(line);                                                                                                     \
            free(along);                                                                                                    \
            return -1;                                                                                                      \
        }                                                                                                                   \
        const Py_buffer *chroma[2] = {cb, cr};                                                                              \
        for (Py_ssize_t p = start; p < stop; p++) {                                                                         \
            for (Py_ssize_t r = 0; r < rows || r < LH; r++) {                                                               \
                T *y = r < LH ? plane_row_##SUFFIX(luma, p, r) : NULL;                                                      \
                if (r >= H) { /* below the image: nothing comes back */                                                    \
                    if (y) memset(y, 0, (size_t)LW * sizeof(T));                                                            \
                    if (r < rows) memset(along + r * dw, 0, (size_t)dw * sizeof(T)), memset(along + (rows + r) * dw, 0, (size_t)dw * sizeof(T)); \
                    continue;                                                                                               \
                }                                                                                                           \
                const char *row = (const char *)g->buf + p * g->strides[0] + r * g->strides[2];                            \
                const T *restrict g0 = (const T *)row, *restrict g1 = (const T *)(row + g->strides[1]),                    \
                        *restrict g2 = (const T *)(row + 2 * g->strides[1]);                                                \
                T *restrict u = line + wide, *restrict v = line + 2 * wide;                                                 \
                T *restrict l = y ? y : line;                                                                               \
                for (Py_ssize_t j = 0; j < W; j++) {                                                                        \
                    const T a = g0[j], bb = g1[j], c = g2[j];                                                               \
                    l[j] = (m[0] * a + m[1] * bb) + m[2] * c;                                                               \
                    u[j] = (m[3] * a + m[4] * bb) + m[5] * c;                                                               \
                    v[j] = (m[6] * a + m[7] * bb) + m[8] * c;                                                               \
                }                                                                                                           \
                if (y)                                                                                                      \
                    for (Py_ssize_t j = W; j < LW; j++) y[j] = (T)0;                                                        \
                for (Py_ssize_t j = W; j < wide; j++) u[j] = v[j] = (T)0;                                                   \
                if (r >= rows) continue;                                                                                    \
                for (int k = 0; k < 2; k++) {                                                                               \
                    const T *src = k ? v : u;                                                                               \
                    T *out = along + (k * rows + r) * dw;                                                                   \
                    if (rx == 2)                                                                                            \
                        triangle_adjoint_##SUFFIX(src, 1, out, dw);                                                         \
                    else                                                                                                    \
                        memcpy(out, src, (size_t)dw * sizeof(T));                                                           \
                }                                                                                                           \
            }                                                                                                               \
            for (int k = 0; k < 2; k++) {                                                                                   \
                const T *a = along + k * rows * dw;                                                                         \
                for (Py_ssize_t i = 0; i < CH; i++) {                                                                       \
                    T *out = plane_row_##SUFFIX(chroma[k], p, i);                                                           \
                    if (i >= dh) {                                                                                          \
                        memset(out, 0, (size_t)CW * sizeof(T));                                                             \
                        continue;                                                                                           \
                    }                                                                                                       \
                    if (ry == 2)                                                                                            \
                        adjoint_row_##SUFFIX(a, 0, dw, out, i, dh, dw);                                                     \
                    else                                                                                                    \
                        memcpy(out, a + i * dw, (size_t)dw * sizeof(T));                                                    \
                    if (rx * ry > 1)                                                                                        \
                        for (Py_ssize_t j = 0; j < dw; j++) out[j] = out[j] * inverse;                                      \
                    for (Py_ssize_t j = dw; j < CW; j++) out[j] = (T)0;                                                     \
                }                                                                                                           \
            }                                                                                                               \
        }                                                                                                                   \
        free(line);                                                                                                         \
        free(along);                                                                                                        \
        return 0;                                                                                                           \
    }
DEFINE_MERGED_ADJOINT(float, f32)
DEFINE_MERGED_ADJOINT(double, f64)

/* ------------------------------------------------------------ Python entry points */
enum { DOWNSAMPLE, UPSAMPLE, UPSAMPLE_ADJOINT, DOWNSAMPLE_ADJOINT };

static PyObject *call(PyObject *args, int which)
{
    PyObject *src, *dst;
    int rx, ry, biased = 0;
    Py_ssize_t start, stop, first, last;
    if (which == UPSAMPLE || which == DOWNSAMPLE) {
        if (!PyArg_ParseTuple(args, "OOiipnnnn", &src, &dst, &rx, &ry, &biased, &start, &stop, &first, &last)) return NULL;
    } else if (!PyArg_ParseTuple(args, "OOiinnnn", &src, &dst, &rx, &ry, &start, &stop, &first, &last)) {
        return NULL;
    }
    if (rx * ry != 2 && rx * ry != 4) {
        PyErr_SetString(PyExc_ValueError, "_sampling: factors must be 2x1, 1x2 or 2x2");
        return NULL;
    }
    Buffers b;
    if (get_buffers(src, dst, rx, ry, which == UPSAMPLE_ADJOINT || which == DOWNSAMPLE, start, stop, first, last, &b) < 0) {
        release(&b);
        return NULL;
    }
    int f64 = float_kind(&b.src) == 2, failed = 0;
    Py_BEGIN_ALLOW_THREADS
    const Py_buffer *s = &b.src, *d = &b.dst;
    if (which == DOWNSAMPLE)
        failed = f64 ? downsample_f64(s, d, rx, ry, biased, start, stop, first, last) : downsample_f32(s, d, rx, ry, biased, start, stop, first, last);
    else if (which == UPSAMPLE)
        failed = f64 ? upsample_f64(s, d, rx, ry, biased, start, stop, first, last) : upsample_f32(s, d, rx, ry, biased, start, stop, first, last);
    else if (which == UPSAMPLE_ADJOINT)
        failed = f64 ? upsample_adjoint_f64(s, d, rx, ry, start, stop, first, last) : upsample_adjoint_f32(s, d, rx, ry, start, stop, first, last);
    else
        failed = f64 ? downsample_adjoint_f64(s, d, rx, ry, start, stop, first, last) : downsample_adjoint_f32(s, d, rx, ry, start, stop, first, last);
    Py_END_ALLOW_THREADS
    release(&b);
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* The byte range [lo, hi) of a buffer with non-negative strides */
static void span(const Py_buffer *b, const char **lo, const char **hi)
{
    Py_ssize_t last = 0;
    for (int k = 0; k < b->ndim; k++) last += (b->shape[k] - 1) * b->strides[k];
    *lo = (const char *)b->buf;
    *hi = *lo + last + b->itemsize;
}

/* The merged passes' buffers: objects[0 .. n) into b (writable where bit i of `writable` is set); how many it got
 * (n, or fewer with an exception set) */
static int get_all(PyObject *const *objects, int n, unsigned writable, Py_buffer *b)
{
    int got = 0;
    for (; got < n; got++)
        if (PyObject_GetBuffer(objects[got], &b[got], (writable >> got) & 1 ? PyBUF_RECORDS : PyBUF_RECORDS_RO) < 0) break;
    return got;
}

/* One float kind for all of b[0 .. n); its kind, or 0 */
static int one_kind(const Py_buffer *b, int n)
{
    int kind = float_kind(&b[0]);
    for (int i = 1; i < n; i++)
        if (float_kind(&b[i]) != kind) return 0;
    return kind;
}

/* Rows contiguous and every stride a non-negative multiple of the item */
static int rows_ok(const Py_buffer *b)
{
    if (b->ndim < 1 || b->strides[b->ndim - 1] != b->itemsize) return 0;
    for (int k = 0; k < b->ndim; k++)
        if (b->strides[k] < 0 || b->strides[k] % b->itemsize) return 0;
    return 1;
}

/* The byte ranges of the n buffers at `bufs` pairwise apart */
static int apart(const Py_buffer *const *bufs, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++) {
            const char *a0, *a1, *c0, *c1;
            span(bufs[i], &a0, &a1);
            span(bufs[k], &c0, &c1);
            if (!(a1 <= c0 || c1 <= a0)) return 0;
        }
    return 1;
}

/* merged(y, cb, cr, out, matrix, shift, rx, ry, rounded, start, stop, first, last): y (N, >= H, >= W) luma, cb and
 * cr (N, h, w) chroma (the real downsampled size: edges repeated there), out (N, 3, H, W), rows contiguous in all,
 * h ry >= H and w rx >= W; matrix (9) and shift (3) contiguous; one float kind throughout; out apart from the rest */
static PyObject *sampling_merged(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objects[6];
    int rx, ry, rounded;
    Py_ssize_t start, stop, first, last;
    if (!PyArg_ParseTuple(args, "OOOOOOiipnnnn:merged", &objects[0], &objects[1], &objects[2], &objects[3], &objects[4], &objects[5], &rx,
                          &ry, &rounded, &start, &stop, &first, &last))
        return NULL;
    Py_buffer b[6];
    int got = get_all(objects, 6, 1u << 3, b), ok = got == 6;
    if (ok) {
        int kind = one_kind(b, 6);
        ok = kind && b[0].ndim == 3 && b[1].ndim == 3 && b[2].ndim == 3 && b[3].ndim == 4 && rx >= 1 && rx <= 2 && ry >= 1 && ry <= 2;
        Py_ssize_t n = ok ? b[3].shape[0] : 0, H = ok ? b[3].shape[2] : 0, W = ok ? b[3].shape[3] : 0;
        ok = ok && b[3].shape[1] == 3 && b[0].shape[0] == n && b[1].shape[0] == n && b[2].shape[0] == n && b[0].shape[1] >= H &&
             b[0].shape[2] >= W && b[1].shape[1] == b[2].shape[1] && b[1].shape[2] == b[2].shape[2] && b[1].shape[1] >= 1 &&
             b[1].shape[2] >= 1 && b[1].shape[1] * ry >= H && b[1].shape[2] * rx >= W && b[4].len == 9 * b[4].itemsize &&
             b[5].len == 3 * b[5].itemsize && PyBuffer_IsContiguous(&b[4], 'C') && PyBuffer_IsContiguous(&b[5], 'C');
        for (int i = 0; i < 4 && ok; i++) ok = rows_ok(&b[i]);
        ok = ok && start >= 0 && start <= stop && stop <= n && first >= 0 && first <= last && last <= H;
        const Py_buffer *written[2] = {&b[3], NULL};
        for (int i = 0; i < 3 && ok && n > 0 && H > 0 && W > 0; i++) { /* out lies apart from the inputs (each read row is still needed) */
            written[1] = &b[i];
            ok = apart(written, 2);
        }
        if (!ok) PyErr_SetString(PyExc_ValueError, "_sampling.merged: bad arguments");
        else {
            int failed;
            Py_BEGIN_ALLOW_THREADS
            if (kind == 2)
                failed = merged_f64(b, (const double *)b[4].buf, (const double *)b[5].buf, rx, ry, rounded, start, stop, first, last);
            else
                failed = merged_f32(b, (const float *)b[4].buf, (const float *)b[5].buf, rx, ry, rounded, start, stop, first, last);
            Py_END_ALLOW_THREADS
            if (failed) {
                PyErr_NoMemory();
                ok = 0;
            }
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

/* encoder(x, luma, cb, cr, matrix, offset, rx, ry, ph, pw, rounded, low, high, start, stop, first, last) -> whether
 * every input read lay in [low, high]: x (N, 3, H, W) in [0, 1], luma (N, >= H, >= W), cb and cr (N, CH, CW) with
 * CH >= ph / ry and CW >= pw / rx, ph >= H and pw >= W multiples of ry and rx; rows contiguous, one float kind, the
 * outputs apart from x and one another; planes [start, stop), downsampled rows [first, last) of ph / ry */
static PyObject *sampling_encoder(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objects[6];
    int rx, ry, rounded;
    Py_ssize_t ph, pw, start, stop, first, last;
    double low, high;
    if (!PyArg_ParseTuple(args, "OOOOOOiinnpddnnnn:encoder", &objects[0], &objects[1], &objects[2], &objects[3], &objects[4], &objects[5],
                          &rx, &ry, &ph, &pw, &rounded, &low, &high, &start, &stop, &first, &last))
        return NULL;
    Py_buffer b[6];
    int got = get_all(objects, 6, 0xEu, b), ok = got == 6, result = 0;
    if (ok) {
        int kind = one_kind(b, 6);
        ok = kind && b[0].ndim == 4 && b[1].ndim == 3 && b[2].ndim == 3 && b[3].ndim == 3 && rx >= 1 && rx <= 2 && ry >= 1 && ry <= 2;
        Py_ssize_t n = ok ? b[0].shape[0] : 0, H = ok ? b[0].shape[2] : 0, W = ok ? b[0].shape[3] : 0;
        ok = ok && b[0].shape[1] == 3 && H >= 1 && W >= 1 && b[1].shape[0] == n && b[2].shape[0] == n && b[3].shape[0] == n &&
             b[1].shape[1] >= H && b[1].shape[2] >= W && b[2].shape[1] == b[3].shape[1] && b[2].shape[2] == b[3].shape[2] && ph >= H &&
             pw >= W && ph % ry == 0 && pw % rx == 0 && b[2].shape[1] >= ph / ry && b[2].shape[2] >= pw / rx && b[4].len == 9 * b[4].itemsize &&
             b[5].len == 3 * b[5].itemsize && PyBuffer_IsContiguous(&b[4], 'C') && PyBuffer_IsContiguous(&b[5], 'C') && low <= high;
        for (int i = 0; i < 4 && ok; i++) ok = rows_ok(&b[i]);
        ok = ok && start >= 0 && start <= stop && stop <= n && first >= 0 && first <= last && last <= ph / ry;
        const Py_buffer *planes[4] = {&b[0], &b[1], &b[2], &b[3]};
        ok = ok && (n == 0 || apart(planes, 4));
        if (!ok) PyErr_SetString(PyExc_ValueError, "_sampling.encoder: bad arguments");
        else {
            Py_BEGIN_ALLOW_THREADS
            if (kind == 2)
                result = encoder_f64(b, (const double *)b[4].buf, (const double *)b[5].buf, rx, ry, ph, pw, rounded, low, high, start, stop, first, last);
            else
                result = encoder_f32(b, (const float *)b[4].buf, (const float *)b[5].buf, rx, ry, ph, pw, rounded, (float)low, (float)high, start, stop,
                                     first, last);
            Py_END_ALLOW_THREADS
            if (result < 0) {
                PyErr_NoMemory();
                ok = 0;
            }
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    if (!ok) return NULL;
    return PyBool_FromLong(result);
}

/* merged_adjoint(grad, m, luma, cb, cr, rx, ry, dh, dw, start, stop): grad (N, 3, H, W), m (9) the transposed matrix;
 * luma (N, >= H, >= W), cb and cr (N, >= dh, >= dw) with dh ry >= H and dw rx >= W; rows contiguous, one float
 * kind, the outputs apart from grad and one another; planes [start, stop) */
static PyObject *sampling_merged_adjoint(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objects[5];
    int rx, ry;
    Py_ssize_t dh, dw, start, stop;
    if (!PyArg_ParseTuple(args, "OOOOOiinnnn:merged_adjoint", &objects[0], &objects[1], &objects[2], &objects[3], &objects[4], &rx, &ry, &dh,
                          &dw, &start, &stop))
        return NULL;
    Py_buffer b[5];
    int got = get_all(objects, 5, 0x1Cu, b), ok = got == 5;
    if (ok) {
        /* b[1] is m: the planes are b[0], b[2..4] */
        const Py_buffer planes[4] = {b[0], b[2], b[3], b[4]};
        int kind = one_kind(b, 5);
        ok = kind && b[0].ndim == 4 && b[2].ndim == 3 && b[3].ndim == 3 && b[4].ndim == 3 && rx >= 1 && rx <= 2 && ry >= 1 && ry <= 2;
        Py_ssize_t n = ok ? b[0].shape[0] : 0, H = ok ? b[0].shape[2] : 0, W = ok ? b[0].shape[3] : 0;
        ok = ok && b[0].shape[1] == 3 && H >= 1 && W >= 1 && b[2].shape[0] == n && b[3].shape[0] == n && b[4].shape[0] == n &&
             b[2].shape[1] >= H && b[2].shape[2] >= W && b[3].shape[1] == b[4].shape[1] && b[3].shape[2] == b[4].shape[2] && dh >= 1 && dw >= 1 &&
             dh * ry >= H && dw * rx >= W && b[3].shape[1] >= dh && b[3].shape[2] >= dw && b[1].len == 9 * b[1].itemsize &&
             PyBuffer_IsContiguous(&b[1], 'C');
        for (int i = 0; i < 4 && ok; i++) ok = rows_ok(&planes[i]);
        ok = ok && start >= 0 && start <= stop && stop <= n;
        const Py_buffer *spans[4] = {&planes[0], &planes[1], &planes[2], &planes[3]};
        ok = ok && (n == 0 || apart(spans, 4));
        if (!ok) PyErr_SetString(PyExc_ValueError, "_sampling.merged_adjoint: bad arguments");
        else {
            int failed;
            Py_BEGIN_ALLOW_THREADS
            if (kind == 2)
                failed = merged_adjoint_f64(planes, (const double *)b[1].buf, rx, ry, dh, dw, start, stop);
            else
                failed = merged_adjoint_f32(planes, (const float *)b[1].buf, rx, ry, dh, dw, start, stop);
            Py_END_ALLOW_THREADS
            if (failed) {
                PyErr_NoMemory();
                ok = 0;
            }
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyObject *sampling_downsample(PyObject *self, PyObject *args) { (void)self; return call(args, DOWNSAMPLE); }
static PyObject *sampling_upsample(PyObject *self, PyObject *args) { (void)self; return call(args, UPSAMPLE); }
static PyObject *sampling_upsample_adjoint(PyObject *self, PyObject *args) { (void)self; return call(args, UPSAMPLE_ADJOINT); }
static PyObject *sampling_downsample_adjoint(PyObject *self, PyObject *args) { (void)self; return call(args, DOWNSAMPLE_ADJOINT); }

static PyMethodDef methods[] = {
    {"downsample", sampling_downsample, METH_VARARGS, "downsample(src, dst, h_factor, v_factor, biased, start, stop, first, last): window means."},
    {"upsample", sampling_upsample, METH_VARARGS, "upsample(src, dst, h_factor, v_factor, biased, start, stop, first, last): the triangle filter."},
    {"upsample_adjoint", sampling_upsample_adjoint, METH_VARARGS, "upsample_adjoint(src, dst, h_factor, v_factor, start, stop, first, last)."},
    {"downsample_adjoint", sampling_downsample_adjoint, METH_VARARGS, "downsample_adjoint(src, dst, h_factor, v_factor, start, stop, first, last)."},
    {"encoder", sampling_encoder, METH_VARARGS,
     "encoder(x, luma, cb, cr, matrix, offset, h_factor, v_factor, padded_h, padded_w, rounded, low, high, start, stop, first, last): "
     "the encoder's samples, color conversion and downsampling in one pass; whether every input read lay in [low, high]."},
    {"merged_adjoint", sampling_merged_adjoint, METH_VARARGS,
     "merged_adjoint(grad, m, luma, cb, cr, h_factor, v_factor, down_h, down_w, start, stop): merged's transpose (the color "
     "conversion's, then the upsampler's and the crops'), into each component's whole-block plane."},
    {"merged", sampling_merged, METH_VARARGS,
     "merged(y, cb, cr, out, matrix, shift, h_factor, v_factor, rounded, start, stop, first, last): the decoder's chroma upsampling "
     "and color conversion (rounded, clamped, / 255) in one pass, for planes [start, stop) and output rows [first, last)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sampling", "Compiled loops of diffjpeg.stages.sampling's real-valued stages.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sampling(void) { return PyModule_Create(&module); }
