/*
 * One 8x8 block's 2-D transform y = A x A^T in _dct.c's fixed order, and
 * the (P, BY, BX, 8, 8) block views the loops read and write: shared by
 * _dct.c (a transform alone) and _quantize.c (the block pass: a block's
 * DCT, quantization, dequantization and inverse DCT in one go), so both
 * sum in the very same order. Include after _loops.h.
 *
 *   rows:    T[i][v] = ((X[i][0] A[v][0] + X[i][1] A[v][1]) + ...) + X[i][7] A[v][7]
 *   columns: Y[u][v] = ((A[u][0] T[0][v] + A[u][1] T[1][v]) + ...) + A[u][7] T[7][v]
 *
 * each product and sum an IEEE operation of the buffer's type (the files
 * are built with -ffp-contract=off: no FMA fuses them).
 */
#ifndef DIFFJPEG_DCT_H
#define DIFFJPEG_DCT_H

#include <string.h>

/* Where block n of a (P, BY, BX, 8, 8) buffer starts, and its row stride (bytes) */
typedef struct {
    const char *base;
    Py_ssize_t s0, s1, s2, row, by, bx;
} Blocks;

/* Block n's position (plane p, block row i, column j): the loops divide
 * once per call and then step, as an integer division per block cost a
 * third of a block's transform */
typedef struct {
    Py_ssize_t p, i, j;
} Cursor;

static inline __attribute__((always_inline)) Cursor cursor_at(const Blocks *b, Py_ssize_t n)
{
    return (Cursor){n / (b->bx * b->by), (n / b->bx) % b->by, n % b->bx};
}

static inline __attribute__((always_inline)) void cursor_next(const Blocks *b, Cursor *c)
{
    if (++c->j == b->bx) {
        c->j = 0;
        if (++c->i == b->by) {
            c->i = 0;
            c->p++;
        }
    }
}

/* Where the block at c starts in b (a buffer of the same P, BY, BX) */
static inline __attribute__((always_inline)) const char *block_at(const Blocks *b, const Cursor *c) { return b->base + c->p * b->s0 + c->i * b->s1 + c->j * b->s2; }

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

#define BLOCK_INLINE static inline __attribute__((always_inline))

#if defined(__GNUC__) || defined(__clang__)
/* A row of a block as one vector of eight lanes (GCC's and Clang's vector
 * extensions: AVX2 registers where the CPU has them, narrower ones
 * otherwise); each lane's operations are the scalar loop's. */
typedef float row_f32 __attribute__((vector_size(8 * sizeof(float))));
typedef double row_f64 __attribute__((vector_size(8 * sizeof(double))));
#define DEFINE_BLOCK_2D(T, SUFFIX, ROW)                                                                      \
    /* at = A^T, row-major: row j of it is column j of A, lane v holding A[v][j] */                         \
    BLOCK_INLINE void transpose_##SUFFIX(const T *a, T at[64])                                               \
    {                                                                                                        \
        for (int j = 0; j < 8; j++)                                                                          \
            for (int v = 0; v < 8; v++) at[j * 8 + v] = a[v * 8 + j];                                        \
    }                                                                                                        \
    /* y = A x A^T, x 64 contiguous values, row u of y at y + u * row (bytes); A's columns are read from     \
     * at as the products need them (memory operands), not held in registers: the block pass's two          \
     * transforms would hold sixteen, every AVX2 register */                                               \
    BLOCK_INLINE void block_2d_##SUFFIX(const T *x, const T *at, const T *a, char *y, Py_ssize_t row)       \
    {                                                                                                        \
        ROW t[8];                                                                                            \
        for (int i = 0; i < 8; i++) {                                                                        \
            ROW col, acc;                                                                                    \
            memcpy(&col, at, sizeof col);                                                                    \
            acc = x[i * 8] * col;                                                                            \
            for (int j = 1; j < 8; j++) {                                                                    \
                memcpy(&col, at + j * 8, sizeof col);                                                        \
                acc = acc + x[i * 8 + j] * col;                                                              \
            }                                                                                                \
            t[i] = acc;                                                                                      \
        }                                                                                                    \
        for (int u = 0; u < 8; u++) {                                                                        \
            ROW acc = a[u * 8] * t[0];                                                                       \
            for (int i = 1; i < 8; i++) acc = acc + a[u * 8 + i] * t[i];                                     \
            memcpy(y + u * row, &acc, sizeof acc);                                                           \
        }                                                                                                    \
    }
#else
/* Without vector extensions: the same operations, one lane at a time */
typedef struct { float lane[8]; } row_f32;
typedef struct { double lane[8]; } row_f64;
#define DEFINE_BLOCK_2D(T, SUFFIX, ROW)                                                                      \
    BLOCK_INLINE void transpose_##SUFFIX(const T *a, T at[64]) { (void)a; (void)at; }                        \
    BLOCK_INLINE void block_2d_##SUFFIX(const T *x, const T *at, const T *a, char *y, Py_ssize_t row)       \
    {                                                                                                        \
        (void)at;                                                                                            \
        T t[64];                                                                                             \
        for (int i = 0; i < 8; i++)                                                                          \
            for (int v = 0; v < 8; v++) {                                                                    \
                T acc = x[i * 8] * a[v * 8];                                                                 \
                for (int j = 1; j < 8; j++) acc = acc + x[i * 8 + j] * a[v * 8 + j];                         \
                t[i * 8 + v] = acc;                                                                          \
            }                                                                                                \
        for (int u = 0; u < 8; u++)                                                                          \
            for (int v = 0; v < 8; v++) {                                                                    \
                T acc = a[u * 8] * t[v];                                                                     \
                for (int i = 1; i < 8; i++) acc = acc + a[u * 8 + i] * t[i * 8 + v];                         \
                ((T *)(y + u * row))[v] = acc;                                                               \
            }                                                                                                \
    }
#endif
DEFINE_BLOCK_2D(float, f32, row_f32)
DEFINE_BLOCK_2D(double, f64, row_f64)

/* The 8 rows of the block at c into x (64 contiguous values), less `shift` where `shifted`; y's into that block */
#define DEFINE_BLOCK_IO(T, SUFFIX)                                                                           \
    BLOCK_INLINE void load_##SUFFIX(const Blocks *b, const Cursor *c, T *x, int shifted, T shift)            \
    {                                                                                                        \
        const char *in = block_at(b, c);                                                                     \
        for (int i = 0; i < 8; i++) {                                                                        \
            memcpy(x + i * 8, in + i * b->row, 8 * sizeof(T));                                               \
            if (shifted)                                                                                     \
                for (int j = 0; j < 8; j++) x[i * 8 + j] = x[i * 8 + j] - shift;                             \
        }                                                                                                    \
    }                                                                                                        \
    BLOCK_INLINE void store_##SUFFIX(const Blocks *b, const Cursor *c, const T *y)                           \
    {                                                                                                        \
        char *out = (char *)block_at(b, c);                                                                  \
        for (int u = 0; u < 8; u++) memcpy(out + u * b->row, y + u * 8, 8 * sizeof(T));                      \
    }
DEFINE_BLOCK_IO(float, f32)
DEFINE_BLOCK_IO(double, f64)

#endif
