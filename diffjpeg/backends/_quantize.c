/*
 * The quantizer of float and soft mode, and every mode's gradient through
 * it, in one compiled pass each way (quantize.py, rounding.py).
 *
 * Forward, per coefficient F with its table entry Q: u = F / Q, then
 * rint(u) (float mode: round half to even, as torch.round) or the
 * surrogate's value r(u) (soft mode). Backward, from the gradient g of the
 * quantized value: g r'(u) / Q for F, and for the table, where it learns,
 * the sum over the image's blocks of -g r'(u) (u / Q): the steps of
 * autograd's backward of F / Q and of the surrogate, in one pass instead of
 * a dozen tensor operations (sigmoid's derivative alone took ten), with
 * 1 / Q's products for the backward's divisions but u's own (each within a
 * unit in the last place of its quotient; u is the tensor form's quotient,
 * where r' can be steep and float mode rounds it). `slope` gives r'(u)
 * alone (exact mode's round trip saves it). The block pass (below, with
 * its own comment) runs a block's DCT, this quantizer and the inverse DCT
 * together for jpeg().
 *
 * Facts relied on:
 * - The division and the rounding are IEEE operations (-ffp-contract=off),
 *   so float mode's forward values are the tensor form's bit for bit.
 * - The surrogates' transcendental functions are not torch's (the sigmoid's
 *   tanh from exp, float32's exp, sine and cosine below, libm's for
 *   float64): their values differ from the tensor form's by a few units in
 *   the last place, inside the float/soft contract
 *   (precision.rounding_tolerance; tests/backends/test_cpu.py holds them to it).
 * - The table's gradient is summed in one fixed order that depends on the
 *   image alone: blocks in order within chunks of CHUNK elements, each chunk
 *   in double, then the chunks in order (fold). The Python side splits work
 *   at chunk boundaries only, so thread counts, strips and batch shapes give
 *   the same bits by construction.
 *
 * Buffers: coefficients, gradients and outputs (N, M) of one float kind,
 * rows contiguous, M a multiple of 64 (the image's blocks one after the
 * other); tables (N, 64) of that kind, rows at any distance (0: one table
 * for all); noise (N, M) uniform draws in [0, 1) (soft mode's noise);
 * partials (N, C, 64) float64, C chunks. Each call takes rows [r0, r1) and
 * elements [e0, e1) of each, and releases the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* HOT: AVX2 gives the loops vector rounding, floor and the exp below */
#include "_loops.h"
/* the block pass's blocks and transform, in _dct.c's order */
#include "_dct.h"

/* rounding.py's surrogates, by their name (quantize.py passes the name) */
enum { LINEAR, POLYNOMIAL, FOURIER, SIGMOID, NOISE, SURROGATES, FOURIER1 = SURROGATES /* fourier of order 1: the loops' own case */ };
static const char *const names[SURROGATES] = {"linear", "polynomial", "fourier", "sigmoid", "noise"};
#define MAX_TERMS 64 /* fourier's order; rounding.py allows any, larger ones take the tensor form */

typedef struct {
    int kind;          /* the surrogate */
    int terms;         /* fourier: order K */
    double a, scale;   /* sigmoid: 1/temperature, 2 tanh(a/2) */
    double slope, inverse_scale; /* sigmoid: 4 a / scale, its derivative's factor; 1 / scale */
    double sigma[MAX_TERMS];
} Surrogate;

/* exp(x) for x <= 0 in float32, vectorizable: x = n ln2 + r with |r| <= ln2/2
 * (ln2 in two parts, so n ln2 is exact to float32's 24 bits plus 12), e^r by
 * its Taylor polynomial of degree 7 (remainder below 2e-9 relative), times
 * 2^n built in the exponent bits. Below -87, 0 (e^-87 is float32's smallest
 * normal). */
static inline float exp_nonpositive(float x)
{
    x = x < -87.0f ? -87.0f : x;
    float n = nearbyintf(x * 1.44269504088896341f);
    float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return x <= -87.0f ? 0.0f : p * two_n;
}


/* cos and sin of a float32 angle t, vectorizable: computed in double (so
 * the results are float32's correctly rounded values but for a rare last
 * bit), t = k pi/2 + r with |r| <= pi/4 (pi/2 in double: k pi/2 is off by
 * under 1e-12 for any angle the quantizer meets, |k| < 2**13), then Taylor
 * polynomials in r (remainders below 2e-9) and k's quadrant. rounding.py
 * takes cos and sin of the float32 product u 2 pi as this does. */
static inline void cos_sin_f32(float angle, float *c, float *s)
{
    double t = angle, k = nearbyint(t * 0.63661977236758134);
    double r = t - k * 1.5707963267948966, r2 = r * r;
    double sr = r * (1.0 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880)))));
    double cr = 1.0 + r2 * (-0.5 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800)))));
    double quadrant = k - 4.0 * floor(k * 0.25); /* 0 .. 3 */
    double cq = quadrant == 0.0 ? cr : quadrant == 1.0 ? -sr : quadrant == 2.0 ? -cr : sr;
    double sq = quadrant == 0.0 ? sr : quadrant == 1.0 ? cr : quadrant == 2.0 ? -sr : -cr;
    *c = (float)cq;
    *s = (float)sq;
}
static inline void cos_sin_f64(double angle, double *c, double *s)
{
    *c = cos(angle);
    *s = sin(angle);
}

/* The surrogate's value r(u) and derivative r'(u), in rounding.py's steps;
 * T float or double. */
#define DEFINE_SURROGATE(T, SUFFIX, RINT, FLOOR, EXP_NONPOSITIVE, COS_SIN)                                              \
    /* The sigmoid's f = floor(u), z = a (u - f - 1/2), e = exp(-2|z|) and r = 1 / (1 + e), which its value \
     * and its derivative share: one exp and one division for both */                                    \
    static inline __attribute__((always_inline)) void sigmoid_parts_##SUFFIX(const Surrogate *s, T u, T *f, T *z, T *e, T *r) \
    {                                                                                                        \
        *f = FLOOR(u);                                                                                       \
        *z = (T)s->a * ((u - *f) - (T)0.5);                                                                  \
        *e = EXP_NONPOSITIVE((T)-2.0 * (*z < (T)0 ? -*z : *z));                                              \
        *r = (T)1.0 / ((T)1.0 + *e);                                                                         \
    }                                                                                                        \
    static inline __attribute__((always_inline)) T value_##SUFFIX(const Surrogate *s, T u, T noise)                                         \
    {                                                                                                        \
        switch (s->kind) {                                                                                   \
        case POLYNOMIAL: {                                                                                   \
            T r = RINT(u), d = u - r;                                                                        \
            return r + d * d * d;                                                                            \
        }                                                                                                    \
        case SIGMOID: { /* tanh(z) / scale = sign(z) ((1 - e) / scale) / (1 + e), e = exp(-2|z|) */        \
            T f, z, e, r;                                                                                    \
            sigmoid_parts_##SUFFIX(s, u, &f, &z, &e, &r);                                                    \
            T t = (((T)1.0 - e) * (T)s->inverse_scale) * r;                                                  \
            return (f + (T)0.5) + (z < (T)0 ? -t : t);                                                       \
        }                                                                                                    \
        case FOURIER1:                                                                                       \
        case FOURIER: { /* p = 2 pi u + pi: cos p = -cos(2 pi u); sin(k p) by rotation, as rounding.py */    \
            T cos_t, sin_t;                                                                                  \
            COS_SIN(u * (T)(2.0 * M_PI), &cos_t, &sin_t);                                                    \
            T c1 = -cos_t, s1 = -sin_t, c = c1, sn = s1;                                                     \
            T total = s1 * (T)(s->sigma[0] / M_PI);                                                          \
            for (int k = 2; k <= (s->kind == FOURIER1 ? 1 : s->terms); k++) {                                                            \
                T c_next = c * c1 - sn * s1;                                                                 \
                sn = sn * c1 + c * s1;                                                                       \
                c = c_next;                                                                                  \
                total = total + sn * (T)(s->sigma[k - 1] / (M_PI * k));                                      \
            }                                                                                                \
            return total + u;                                                                                \
        }                                                                                                    \
        case NOISE:                                                                                          \
            return u + (noise - (T)0.5);                                                                     \
        default:                                                                                             \
            return u;                                                                                        \
        }                                                                                                    \
    }                                                                                                        \
    static inline __attribute__((always_inline)) T derivative_##SUFFIX(const Surrogate *s, T u)                                             \
    {                                                                                                        \
        switch (s->kind) {                                                                                   \
        case POLYNOMIAL: {                                                                                   \
            T d = u - RINT(u);                                                                               \
            return d * d * (T)3.0;                                                                           \
        }                                                                                                    \
        case SIGMOID: { /* a (1 - tanh(z)**2) / scale = (4a / scale) e / (1 + e)**2: no cancellation     \
                         * where tanh(z) nears 1 */                                                          \
            T f, z, e, r;                                                                                    \
            sigmoid_parts_##SUFFIX(s, u, &f, &z, &e, &r);                                                    \
            return (((T)s->slope * e) * r) * r;                                                              \
        }                                                                                                    \
        case FOURIER1:                                                                                       \
        case FOURIER: {                                                                                      \
            T cos_t, sin_t;                                                                                  \
            COS_SIN(u * (T)(2.0 * M_PI), &cos_t, &sin_t);                                                    \
            T c1 = -cos_t, s1 = -sin_t, c = c1, sn = s1;                                                     \
            T total = c1 * (T)s->sigma[0];                                                                   \
            for (int k = 2; k <= (s->kind == FOURIER1 ? 1 : s->terms); k++) {                                                            \
                T c_next = c * c1 - sn * s1;                                                                 \
                sn = sn * c1 + c * s1;                                                                       \
                c = c_next;                                                                                  \
                total = total + c * (T)s->sigma[k - 1];                                                      \
            }                                                                                                \
            return total * (T)2.0 + (T)1.0;                                                                  \
        }                                                                                                    \
        default:                                                                                             \
            return (T)1.0;                                                                                   \
        }                                                                                                    \
    }                                                                                                        \
    /* The value (soft) or rint(u) and the derivative r'(u) together: the sigmoid's exp once for both       \
     * (the same operations as value_ and derivative_, so the same bits) */                                  \
    static inline __attribute__((always_inline)) T value_and_slope_##SUFFIX(const Surrogate *s, T u, T noise, int soft, T *slope)          \
    {                                                                                                        \
        if (s->kind == SIGMOID && soft) {                                                                    \
            T f, z, e, r;                                                                                    \
            sigmoid_parts_##SUFFIX(s, u, &f, &z, &e, &r);                                                    \
            *slope = (((T)s->slope * e) * r) * r;                                                            \
            T t = (((T)1.0 - e) * (T)s->inverse_scale) * r;                                                  \
            return (f + (T)0.5) + (z < (T)0 ? -t : t);                                                       \
        }                                                                                                    \
        *slope = derivative_##SUFFIX(s, u);                                                                  \
        return soft ? value_##SUFFIX(s, u, noise) : RINT(u);                                                 \
    }
DEFINE_SURROGATE(float, f32, nearbyintf, floorf, exp_nonpositive, cos_sin_f32)
DEFINE_SURROGATE(double, f64, nearbyint, floor, exp, cos_sin_f64)

/* One row's elements [e0, e1) (multiples of 64, or e1 = M), a block at a
 * time. Each (surrogate, output) case is its own loop, the surrogate a
 * constant in it, which the compiler vectorizes where it can (not
 * fourier's sin and cos). */
#define INLINE static inline __attribute__((always_inline))
#define DEFINE_LOOPS(T, SUFFIX, RINT)                                                                         \
    INLINE void forward_kind_##SUFFIX(const T *f, const T *q, T *v, const T *noise, int soft, const Surrogate *s, \
                                      const int kind, Py_ssize_t e0, Py_ssize_t e1)                           \
    {                                                                                                        \
        Surrogate local = *s;                                                                                \
        local.kind = kind;                                                                                   \
        for (Py_ssize_t b = e0; b < e1; b += 64)                                                             \
            for (int k = 0; k < 64; k++) {                                                                   \
                T u = f[b + k] / q[k];                                                                       \
                v[b + k] = !soft ? RINT(u) : value_##SUFFIX(&local, u, kind == NOISE ? noise[b + k] : (T)0);  \
            }                                                                                                \
    }                                                                                                        \
    HOT static void forward_##SUFFIX(const T *f, const T *q, T *v, const T *noise, int soft, const Surrogate *s, \
                                     Py_ssize_t e0, Py_ssize_t e1)                                            \
    {                                                                                                        \
        if (!soft) forward_kind_##SUFFIX(f, q, v, noise, 0, s, LINEAR, e0, e1);                              \
        else switch (s->kind) {                                                                              \
        case POLYNOMIAL: forward_kind_##SUFFIX(f, q, v, noise, 1, s, POLYNOMIAL, e0, e1); break;            \
        case SIGMOID: forward_kind_##SUFFIX(f, q, v, noise, 1, s, SIGMOID, e0, e1); break;                  \
        case FOURIER: /* order 1, the default, its own loop: a constant trip count vectorizes */ \
            if (s->terms == 1) forward_kind_##SUFFIX(f, q, v, noise, 1, s, FOURIER1, e0, e1); \
            else forward_kind_##SUFFIX(f, q, v, noise, 1, s, FOURIER, e0, e1); \
            break; \
        case NOISE: forward_kind_##SUFFIX(f, q, v, noise, 1, s, NOISE, e0, e1); break;                      \
        default: forward_kind_##SUFFIX(f, q, v, noise, 1, s, LINEAR, e0, e1);                               \
        }                                                                                                    \
    }                                                                                                        \
    /* r'(F / Q) alone: the derivative the backward multiplies by (exact mode's round trip saves it) */    \
    INLINE void slope_kind_##SUFFIX(const T *f, const T *q, T *v, const Surrogate *s, const int kind, Py_ssize_t e0, \
                                    Py_ssize_t e1)                                                           \
    {                                                                                                        \
        Surrogate local = *s;                                                                                \
        local.kind = kind;                                                                                   \
        for (Py_ssize_t b = e0; b < e1; b += 64)                                                             \
            for (int k = 0; k < 64; k++) v[b + k] = derivative_##SUFFIX(&local, f[b + k] / q[k]);            \
    }                                                                                                        \
    HOT static void slope_##SUFFIX(const T *f, const T *q, T *v, const Surrogate *s, Py_ssize_t e0, Py_ssize_t e1) \
    {                                                                                                        \
        switch (s->kind) {                                                                                   \
        case POLYNOMIAL: slope_kind_##SUFFIX(f, q, v, s, POLYNOMIAL, e0, e1); break;                        \
        case SIGMOID: slope_kind_##SUFFIX(f, q, v, s, SIGMOID, e0, e1); break;                              \
        case FOURIER:                                                                                        \
            if (s->terms == 1) slope_kind_##SUFFIX(f, q, v, s, FOURIER1, e0, e1);                            \
            else slope_kind_##SUFFIX(f, q, v, s, FOURIER, e0, e1);                                           \
            break;                                                                                           \
        default: slope_kind_##SUFFIX(f, q, v, s, LINEAR, e0, e1);                                            \
        }                                                                                                    \
    }                                                                                                        \
    /* gf = (g r'(u)) / Q as autograd's division backward has it; with partials, per chunk of `chunk`      \
     * elements the sums of -(g r'(u)) (u / Q) over its blocks, in double */                                \
    INLINE void backward_kind_##SUFFIX(const T *g, const T *f, const T *q, T *gf, double *partials, Py_ssize_t chunk, \
                                       const Surrogate *s, const int kind, const int sums, Py_ssize_t e0, Py_ssize_t e1) \
    {                                                                                                        \
        Surrogate local = *s;                                                                                \
        local.kind = kind;                                                                                   \
        T rq[64]; /* 1 / Q: products for two of the divisions (each within a unit of its quotient); u      \
                   * itself divides, as the tensor form: r' is steep where u is large */                   \
        for (int k = 0; k < 64; k++) rq[k] = (T)1.0 / q[k];                                                  \
        for (Py_ssize_t c0 = e0; c0 < e1; c0 += chunk) {                                                     \
            Py_ssize_t c1 = c0 + chunk < e1 ? c0 + chunk : e1;                                               \
            double acc[64] = {0};                                                                            \
            for (Py_ssize_t b = c0; b < c1; b += 64)                                                         \
                for (int k = 0; k < 64; k++) {                                                               \
                    T u = f[b + k] / q[k];                                                                   \
                    T gu = kind == LINEAR ? g[b + k] : g[b + k] * derivative_##SUFFIX(&local, u);            \
                    gf[b + k] = gu * rq[k];                                                                  \
                    if (sums) acc[k] += (double)(-gu * (u * rq[k]));                                         \
                }                                                                                            \
            if (sums) memcpy(partials + (c0 / chunk) * 64, acc, sizeof acc);                                 \
        }                                                                                                    \
    }                                                                                                        \
    HOT static void backward_##SUFFIX(const T *g, const T *f, const T *q, T *gf, double *partials, Py_ssize_t chunk, \
                                      const Surrogate *s, Py_ssize_t e0, Py_ssize_t e1)                       \
    {                                                                                                        \
        int sums = partials != NULL;                                                                         \
        switch (s->kind * 2 + sums) {                                                                        \
        case POLYNOMIAL * 2: backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, POLYNOMIAL, 0, e0, e1); break; \
        case POLYNOMIAL * 2 + 1: backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, POLYNOMIAL, 1, e0, e1); break; \
        case SIGMOID * 2: backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, SIGMOID, 0, e0, e1); break; \
        case SIGMOID * 2 + 1: backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, SIGMOID, 1, e0, e1); break; \
        case FOURIER * 2:                                                                                    \
            if (s->terms == 1) backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, FOURIER1, 0, e0, e1); \
            else backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, FOURIER, 0, e0, e1);                \
            break;                                                                                           \
        case FOURIER * 2 + 1:                                                                                \
            if (s->terms == 1) backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, FOURIER1, 1, e0, e1); \
            else backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, FOURIER, 1, e0, e1);                \
            break;                                                                                           \
        default: /* linear and noise: r' = 1 */                                                              \
            if (sums) backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, LINEAR, 1, e0, e1);            \
            else backward_kind_##SUFFIX(g, f, q, gf, partials, chunk, s, LINEAR, 0, e0, e1);                 \
        }                                                                                                    \
    }
DEFINE_LOOPS(float, f32, nearbyintf)
DEFINE_LOOPS(double, f64, nearbyint)

/* ------------------------------------------------------------ the block pass
 * jpeg()'s float and soft mode between the sampled planes, a block at a
 * time (dctmgr.py): forward, X - 128 -> F = C X C^T -> v = rint(F / Q) or
 * r(F / Q), and r'(F / Q) saved for the backward -> D = v Q -> Y = C^T D C
 * -> clamp(Y + 128, 0, 255), rounded first in float mode; backward, from
 * the gradient G of the output block: C G C^T -> x Q -> x r' (where saved;
 * linear and noise: r' = 1), x 1 / Q -> C^T (.) C. The steps, their
 * operations and order are those of the separate loops (_dct.h's
 * transform, the quantizer's loops above, torch's q * Q, _rounding.c's
 * clamp), so the values are theirs bit for bit; one pass instead of eight,
 * the coefficients never leave the cache, and the sigmoid's exp serves its
 * value and its derivative at once. */
#define DEFINE_BLOCK_PASS(T, SUFFIX, RINT)                                                                   \
    typedef struct {                                                                                         \
        Blocks src, dst;                                                                                     \
        const T *tables, *c, *ct; /* tables: rows of 64 at table_row elements (0: one for all); C, C^T */    \
        Py_ssize_t table_row;                                                                                \
        T *slopes;                /* r'(F / Q), or NULL; (P, BY BX 64) contiguous */                        \
        const T *noise;           /* soft mode's noise draws, laid out as slopes */                          \
    } Pass_##SUFFIX;                                                                                         \
    INLINE void pass_forward_kind_##SUFFIX(const Pass_##SUFFIX *p, const int soft, const Surrogate *s, const int kind, \
                                           const int sloped, Py_ssize_t start, Py_ssize_t stop)              \
    {                                                                                                        \
        Surrogate local = *s;                                                                                \
        local.kind = kind;                                                                                   \
        const T *ac = p->ct, *act = p->c; /* A^T of C and of C^T */                                          \
        Cursor at = cursor_at(&p->src, start);                                                               \
        for (Py_ssize_t n = start; n < stop; n++, cursor_next(&p->src, &at)) {                               \
            const T *q = p->tables + at.p * p->table_row;                                                    \
            T x[64], f[64], d[64];                                                                           \
            load_##SUFFIX(&p->src, &at, x, 1, (T)128.0);                                                     \
            block_2d_##SUFFIX(x, ac, p->c, (char *)f, sizeof f / 8);                                         \
            for (int k = 0; k < 64; k++) {                                                                   \
                T u = f[k] / q[k], v, slope;                                                                 \
                T noise = kind == NOISE && soft ? p->noise[n * 64 + k] : (T)0;                               \
                if (sloped) {                                                                                \
                    v = value_and_slope_##SUFFIX(&local, u, noise, soft, &slope);                            \
                    p->slopes[n * 64 + k] = slope;                                                           \
                } else                                                                                       \
                    v = !soft ? RINT(u) : value_##SUFFIX(&local, u, noise);                                  \
                d[k] = v * q[k];                                                                             \
            }                                                                                                \
            block_2d_##SUFFIX(d, act, p->ct, (char *)x, sizeof x / 8);                                       \
            for (int k = 0; k < 64; k++) {                                                                   \
                T v = x[k] + (T)128.0;                                                                       \
                if (!soft) v = RINT(v);                                                                      \
                v = v < (T)0.0 ? (T)0.0 : v;                                                                 \
                x[k] = v > (T)255.0 ? (T)255.0 : v;                                                          \
            }                                                                                                \
            store_##SUFFIX(&p->dst, &at, x);                                                                 \
        }                                                                                                    \
    }                                                                                                        \
    /* each (mode, surrogate, slopes) its own loop, as the quantizer's */                                    \
    INLINE void pass_forward_mode_##SUFFIX(const Pass_##SUFFIX *p, const int soft, const Surrogate *s, const int sloped, \
                                           Py_ssize_t start, Py_ssize_t stop)                                \
    {                                                                                                        \
        switch (s->kind) {                                                                                   \
        case POLYNOMIAL: pass_forward_kind_##SUFFIX(p, soft, s, POLYNOMIAL, sloped, start, stop); break;    \
        case SIGMOID: pass_forward_kind_##SUFFIX(p, soft, s, SIGMOID, sloped, start, stop); break;          \
        case FOURIER:                                                                                        \
            if (s->terms == 1) pass_forward_kind_##SUFFIX(p, soft, s, FOURIER1, sloped, start, stop);        \
            else pass_forward_kind_##SUFFIX(p, soft, s, FOURIER, sloped, start, stop);                       \
            break;                                                                                           \
        case NOISE: pass_forward_kind_##SUFFIX(p, soft, s, NOISE, sloped, start, stop); break;              \
        default: pass_forward_kind_##SUFFIX(p, soft, s, LINEAR, sloped, start, stop);                        \
        }                                                                                                    \
    }                                                                                                        \
    HOT static void pass_forward_##SUFFIX(const Pass_##SUFFIX *p, int soft, const Surrogate *s, Py_ssize_t start, \
                                          Py_ssize_t stop)                                                   \
    {                                                                                                        \
        if (!p->slopes) {                                                                                    \
            if (!soft) pass_forward_kind_##SUFFIX(p, 0, s, LINEAR, 0, start, stop); /* rint alone */        \
            else pass_forward_mode_##SUFFIX(p, 1, s, 0, start, stop);                                        \
        } else if (!soft)                                                                                    \
            pass_forward_mode_##SUFFIX(p, 0, s, 1, start, stop);                                             \
        else                                                                                                 \
            pass_forward_mode_##SUFFIX(p, 1, s, 1, start, stop);                                             \
    }                                                                                                        \
    /* src: the output's gradient, dst: the input's */                                                       \
    INLINE void pass_backward_kind_##SUFFIX(const Pass_##SUFFIX *p, const int sloped, Py_ssize_t start, Py_ssize_t stop) \
    {                                                                                                        \
        const T *ac = p->ct, *act = p->c; /* A^T of C and of C^T */                                          \
        T rq[64];                                                                                            \
        const T *last = NULL;                                                                                \
        Cursor at = cursor_at(&p->src, start);                                                               \
        for (Py_ssize_t n = start; n < stop; n++, cursor_next(&p->src, &at)) {                               \
            const T *q = p->tables + at.p * p->table_row;                                                    \
            if (q != last) { /* 1 / Q, as the quantizer's backward */                                        \
                for (int k = 0; k < 64; k++) rq[k] = (T)1.0 / q[k];                                          \
                last = q;                                                                                    \
            }                                                                                                \
            T g[64], d[64];                                                                                  \
            load_##SUFFIX(&p->src, &at, g, 0, (T)0.0);                                                       \
            block_2d_##SUFFIX(g, ac, p->c, (char *)d, sizeof d / 8);                                         \
            for (int k = 0; k < 64; k++) {                                                                   \
                T gq = d[k] * q[k];                                                                          \
                T gu = sloped ? gq * p->slopes[n * 64 + k] : gq;                                             \
                d[k] = gu * rq[k];                                                                           \
            }                                                                                                \
            block_2d_##SUFFIX(d, act, p->ct, (char *)block_at(&p->dst, &at), p->dst.row);                    \
        }                                                                                                    \
    }                                                                                                        \
    HOT static void pass_backward_##SUFFIX(const Pass_##SUFFIX *p, Py_ssize_t start, Py_ssize_t stop)        \
    {                                                                                                        \
        if (p->slopes) pass_backward_kind_##SUFFIX(p, 1, start, stop);                                       \
        else pass_backward_kind_##SUFFIX(p, 0, start, stop);                                                 \
    }
DEFINE_BLOCK_PASS(float, f32, nearbyintf)
DEFINE_BLOCK_PASS(double, f64, nearbyint)

/* ------------------------------------------------------------ argument checks */
static int rows_of(const Py_buffer *b, int kind, Py_ssize_t rows, Py_ssize_t cols)
{
    return float_kind(b) == kind && b->ndim == 2 && b->shape[0] == rows && b->shape[1] == cols && b->strides[1] == b->itemsize &&
           b->strides[0] >= 0 && b->strides[0] % b->itemsize == 0;
}

static int parse_surrogate(const char *name, PyObject *params, Surrogate *s)
{
    memset(s, 0, sizeof *s);
    s->kind = -1;
    for (int k = 0; k < SURROGATES; k++)
        if (strcmp(name, names[k]) == 0) s->kind = k;
    PyObject *seq = PySequence_Fast(params, "_quantize: params must be a sequence of floats");
    if (!seq) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int ok = s->kind >= 0;
    if (ok && s->kind == SIGMOID) ok = n == 2;
    if (ok && s->kind == FOURIER) ok = n >= 1 && n <= MAX_TERMS;
    if (ok && (s->kind == SIGMOID || s->kind == FOURIER)) {
        double values[MAX_TERMS];
        for (Py_ssize_t i = 0; ok && i < n; i++) {
            values[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
            ok = !PyErr_Occurred() && isfinite(values[i]);
        }
        if (ok && s->kind == SIGMOID) {
            s->a = values[0], s->scale = values[1];
            ok = s->a > 0 && s->scale > 0;
            s->slope = 4.0 * s->a / s->scale;
            s->inverse_scale = 1.0 / s->scale;
        } else if (ok) {
            s->terms = (int)n;
            memcpy(s->sigma, values, n * sizeof(double));
        }
    }
    Py_DECREF(seq);
    if (!ok && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_quantize: unknown surrogate or bad parameters");
    return ok;
}

typedef struct {
    Py_buffer b[8];
    int held[8];
} Buffers;

static int get(Buffers *bs, int i, PyObject *obj, int writable)
{
    if (obj == Py_None) return 1;
    if (PyObject_GetBuffer(obj, &bs->b[i], writable ? PyBUF_RECORDS : PyBUF_RECORDS_RO) < 0) return 0;
    bs->held[i] = 1;
    return 1;
}

static void release_all(Buffers *bs)
{
    for (int i = 0; i < 8; i++)
        if (bs->held[i]) PyBuffer_Release(&bs->b[i]);
}

/* rows [r0, r1) and elements [e0, e1) inside (rows, cols), e0 on a block */
static int range_ok(Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t e0, Py_ssize_t e1, Py_ssize_t rows, Py_ssize_t cols)
{
    return r0 >= 0 && r0 <= r1 && r1 <= rows && e0 >= 0 && e0 <= e1 && e1 <= cols && e0 % 64 == 0 && cols % 64 == 0;
}

#define ROW(view, r) ((char *)(view).buf + (r) * (view).strides[0])

static PyObject *quantize_forward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *tables, *dst, *noise, *params;
    const char *name;
    int soft;
    Py_ssize_t r0, r1, e0, e1;
    if (!PyArg_ParseTuple(args, "OOOOpsOnnnn:forward", &src, &tables, &dst, &noise, &soft, &name, &params, &r0, &r1, &e0, &e1)) return NULL;
    Surrogate s;
    if (!parse_surrogate(name, params, &s)) return NULL;
    Buffers bs = {0};
    if (!get(&bs, 0, src, 0) || !get(&bs, 1, tables, 0) || !get(&bs, 2, dst, 1) || !get(&bs, 3, noise, 0)) {
        release_all(&bs);
        return NULL;
    }
    int kind = float_kind(&bs.b[0]);
    Py_ssize_t rows = kind && bs.b[0].ndim == 2 ? bs.b[0].shape[0] : 0, cols = kind && bs.b[0].ndim == 2 ? bs.b[0].shape[1] : 0;
    int needs_noise = soft && s.kind == NOISE;
    int ok = kind && rows_of(&bs.b[0], kind, rows, cols) && rows_of(&bs.b[1], kind, rows, 64) && rows_of(&bs.b[2], kind, rows, cols) &&
             (needs_noise ? bs.held[3] && rows_of(&bs.b[3], kind, rows, cols) : !bs.held[3]) && range_ok(r0, r1, e0, e1, rows, cols);
    if (!ok) {
        release_all(&bs);
        PyErr_SetString(PyExc_ValueError, "_quantize.forward: bad arguments");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = r0; r < r1; r++) {
        const char *n = needs_noise ? ROW(bs.b[3], r) : NULL;
        if (kind == 2)
            forward_f64((const double *)ROW(bs.b[0], r), (const double *)ROW(bs.b[1], r), (double *)ROW(bs.b[2], r), (const double *)n, soft,
                        &s, e0, e1);
        else
            forward_f32((const float *)ROW(bs.b[0], r), (const float *)ROW(bs.b[1], r), (float *)ROW(bs.b[2], r), (const float *)n, soft, &s,
                        e0, e1);
    }
    Py_END_ALLOW_THREADS
    release_all(&bs);
    Py_RETURN_NONE;
}

static PyObject *quantize_slope(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *tables, *dst, *params;
    const char *name;
    Py_ssize_t r0, r1, e0, e1;
    if (!PyArg_ParseTuple(args, "OOOsOnnnn:slope", &src, &tables, &dst, &name, &params, &r0, &r1, &e0, &e1)) return NULL;
    Surrogate s;
    if (!parse_surrogate(name, params, &s)) return NULL;
    Buffers bs = {0};
    if (!get(&bs, 0, src, 0) || !get(&bs, 1, tables, 0) || !get(&bs, 2, dst, 1)) {
        release_all(&bs);
        return NULL;
    }
    int kind = float_kind(&bs.b[0]);
    Py_ssize_t rows = kind && bs.b[0].ndim == 2 ? bs.b[0].shape[0] : 0, cols = kind && bs.b[0].ndim == 2 ? bs.b[0].shape[1] : 0;
    int ok = kind && rows_of(&bs.b[0], kind, rows, cols) && rows_of(&bs.b[1], kind, rows, 64) && rows_of(&bs.b[2], kind, rows, cols) &&
             range_ok(r0, r1, e0, e1, rows, cols);
    if (!ok) {
        release_all(&bs);
        PyErr_SetString(PyExc_ValueError, "_quantize.slope: bad arguments");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = r0; r < r1; r++) {
        if (kind == 2)
            slope_f64((const double *)ROW(bs.b[0], r), (const double *)ROW(bs.b[1], r), (double *)ROW(bs.b[2], r), &s, e0, e1);
        else
            slope_f32((const float *)ROW(bs.b[0], r), (const float *)ROW(bs.b[1], r), (float *)ROW(bs.b[2], r), &s, e0, e1);
    }
    Py_END_ALLOW_THREADS
    release_all(&bs);
    Py_RETURN_NONE;
}

static PyObject *quantize_backward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *grad, *src, *tables, *dst, *partials, *params;
    const char *name;
    Py_ssize_t chunk, r0, r1, e0, e1;
    if (!PyArg_ParseTuple(args, "OOOOOsOnnnnn:backward", &grad, &src, &tables, &dst, &partials, &name, &params, &chunk, &r0, &r1, &e0, &e1))
        return NULL;
    Surrogate s;
    if (!parse_surrogate(name, params, &s)) return NULL;
    Buffers bs = {0};
    if (!get(&bs, 0, grad, 0) || !get(&bs, 1, src, 0) || !get(&bs, 2, tables, 0) || !get(&bs, 3, dst, 1) || !get(&bs, 4, partials, 1)) {
        release_all(&bs);
        return NULL;
    }
    int kind = float_kind(&bs.b[0]);
    Py_ssize_t rows = kind && bs.b[0].ndim == 2 ? bs.b[0].shape[0] : 0, cols = kind && bs.b[0].ndim == 2 ? bs.b[0].shape[1] : 0;
    int ok = kind && rows_of(&bs.b[0], kind, rows, cols) && rows_of(&bs.b[1], kind, rows, cols) && rows_of(&bs.b[2], kind, rows, 64) &&
             bs.held[3] && rows_of(&bs.b[3], kind, rows, cols) && chunk > 0 && chunk % 64 == 0 && range_ok(r0, r1, e0, e1, rows, cols) &&
             e0 % chunk == 0 && (e1 % chunk == 0 || e1 == cols);
    Py_ssize_t chunks = ok ? (cols + chunk - 1) / chunk : 0;
    if (ok && bs.held[4]) { /* (rows, chunks, 64) float64, contiguous */
        const Py_buffer *p = &bs.b[4];
        ok = p->ndim == 3 && p->format && strcmp(p->format, "d") == 0 && p->shape[0] == rows && p->shape[1] == chunks && p->shape[2] == 64 &&
             PyBuffer_IsContiguous(p, 'C');
    }
    if (!ok) {
        release_all(&bs);
        PyErr_SetString(PyExc_ValueError, "_quantize.backward: bad arguments");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = r0; r < r1; r++) {
        double *p = bs.held[4] ? (double *)bs.b[4].buf + r * chunks * 64 : NULL;
        char *out = ROW(bs.b[3], r);
        if (kind == 2)
            backward_f64((const double *)ROW(bs.b[0], r), (const double *)ROW(bs.b[1], r), (const double *)ROW(bs.b[2], r), (double *)out, p,
                         chunk, &s, e0, e1);
        else
            backward_f32((const float *)ROW(bs.b[0], r), (const float *)ROW(bs.b[1], r), (const float *)ROW(bs.b[2], r), (float *)out, p,
                         chunk, &s, e0, e1);
    }
    Py_END_ALLOW_THREADS
    release_all(&bs);
    Py_RETURN_NONE;
}

/* out[n][k] = the chunks' partial sums of row n, added in chunk order, in
 * double, then rounded once to out's kind */
static PyObject *fold(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *partials, *out;
    if (!PyArg_ParseTuple(args, "OO:fold", &partials, &out)) return NULL;
    Buffers bs = {0};
    if (!get(&bs, 0, partials, 0) || !get(&bs, 1, out, 1)) {
        release_all(&bs);
        return NULL;
    }
    const Py_buffer *p = &bs.b[0];
    int kind = float_kind(&bs.b[1]);
    int ok = p->ndim == 3 && p->format && strcmp(p->format, "d") == 0 && p->shape[2] == 64 && PyBuffer_IsContiguous(p, 'C') && kind &&
             rows_of(&bs.b[1], kind, p->shape[0], 64);
    if (!ok) {
        release_all(&bs);
        PyErr_SetString(PyExc_ValueError, "_quantize.fold: bad arguments");
        return NULL;
    }
    for (Py_ssize_t n = 0; n < p->shape[0]; n++) {
        const double *row = (const double *)p->buf + n * p->shape[1] * 64;
        for (int k = 0; k < 64; k++) {
            double total = 0.0;
            for (Py_ssize_t c = 0; c < p->shape[1]; c++) total += row[c * 64 + k];
            if (kind == 2)
                ((double *)ROW(bs.b[1], n))[k] = total;
            else
                ((float *)ROW(bs.b[1], n))[k] = (float)total;
        }
    }
    release_all(&bs);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------ the block pass's entry points */
/* A matrix of 64 values of the kind */
static int matrix_ok(const Py_buffer *m, int kind) { return float_kind(m) == kind && PyBuffer_IsContiguous(m, 'C') && m->len == 64 * m->itemsize; }

/* dst is src itself (each block is read whole before it is written) or lies apart from it */
static int apart_or_same(const Py_buffer *a, const Py_buffer *b, const char *a_lo, const char *a_hi, const char *b_lo, const char *b_hi)
{
    if (a->buf == b->buf && memcmp(a->strides, b->strides, 5 * sizeof(Py_ssize_t)) == 0) return 1;
    return b_hi <= a_lo || a_hi <= b_lo;
}

/* (src, dst, tables, slopes, noise, c, ct) as the pass reads them; 0 and an exception where they do not fit */
static int pass_views(Buffers *bs, int *kind, Blocks *src, Blocks *dst, int noise_required, Py_ssize_t start, Py_ssize_t stop, const char *who)
{
    const char *s_lo, *s_hi, *d_lo, *d_hi;
    *kind = float_kind(&bs->b[0]);
    int ok = *kind && blocks_view(&bs->b[0], *kind, src, &s_lo, &s_hi) && blocks_view(&bs->b[1], *kind, dst, &d_lo, &d_hi);
    Py_ssize_t planes = ok ? bs->b[0].shape[0] : 0, per_plane = ok ? bs->b[0].shape[1] * bs->b[0].shape[2] : 0, count = planes * per_plane;
    for (int d = 0; ok && d < 3; d++) ok = bs->b[0].shape[d] == bs->b[1].shape[d];
    ok = ok && rows_of(&bs->b[2], *kind, planes, 64) && matrix_ok(&bs->b[5], *kind) && matrix_ok(&bs->b[6], *kind);
    ok = ok && (count == 0 || apart_or_same(&bs->b[0], &bs->b[1], s_lo, s_hi, d_lo, d_hi));
    for (int i = 3; ok && i <= 4; i++) /* slopes (where given), noise (where required): (P, BY BX 64), contiguous */
        if (i == 3 ? bs->held[3] : noise_required)
            ok = bs->held[i] && rows_of(&bs->b[i], *kind, planes, per_plane * 64) && PyBuffer_IsContiguous(&bs->b[i], 'C');
    ok = ok && (noise_required || !bs->held[4]) && start >= 0 && start <= stop && stop <= count;
    if (!ok) PyErr_Format(PyExc_ValueError, "_quantize.%s: bad arguments", who);
    return ok;
}

/* the buffers of objects[0..6], slopes (3) written by the forward */
static int get_pass_buffers(Buffers *bs, PyObject *const objects[7], int slopes_writable)
{
    for (int i = 0; i < 7; i++)
        if (!get(bs, i, objects[i], i == 1 || (i == 3 && slopes_writable))) {
            release_all(bs);
            return 0;
        }
    return 1;
}

#define PASS(T, bs, in, out) \
    {in, out, (const T *)(bs).b[2].buf, (const T *)(bs).b[5].buf, (const T *)(bs).b[6].buf, (bs).b[2].strides[0] / (bs).b[2].itemsize, \
     (bs).held[3] ? (T *)(bs).b[3].buf : NULL, (bs).held[4] ? (const T *)(bs).b[4].buf : NULL}

static PyObject *block_forward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src, *dst, *tables, *slopes, *noise, *c, *ct, *params;
    const char *name;
    int soft;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOOOOOpsOnn:block_forward", &src, &dst, &tables, &slopes, &noise, &c, &ct, &soft, &name, &params, &start, &stop))
        return NULL;
    Surrogate s;
    if (!parse_surrogate(name, params, &s)) return NULL;
    Buffers bs = {0};
    PyObject *const objects[7] = {src, dst, tables, slopes, noise, c, ct};
    if (!get_pass_buffers(&bs, objects, 1)) return NULL;
    int kind;
    Blocks in, out;
    if (!pass_views(&bs, &kind, &in, &out, soft && s.kind == NOISE, start, stop, "block_forward")) {
        release_all(&bs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (kind == 2) {
        Pass_f64 p = PASS(double, bs, in, out);
        pass_forward_f64(&p, soft, &s, start, stop);
    } else {
        Pass_f32 p = PASS(float, bs, in, out);
        pass_forward_f32(&p, soft, &s, start, stop);
    }
    Py_END_ALLOW_THREADS
    release_all(&bs);
    Py_RETURN_NONE;
}

static PyObject *block_backward(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *grad, *dst, *tables, *slopes, *c, *ct;
    Py_ssize_t start, stop;
    if (!PyArg_ParseTuple(args, "OOOOOOnn:block_backward", &grad, &dst, &tables, &slopes, &c, &ct, &start, &stop)) return NULL;
    Buffers bs = {0};
    PyObject *const objects[7] = {grad, dst, tables, slopes, Py_None, c, ct};
    if (!get_pass_buffers(&bs, objects, 0)) return NULL;
    int kind;
    Blocks in, out;
    if (!pass_views(&bs, &kind, &in, &out, 0, start, stop, "block_backward")) {
        release_all(&bs);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (kind == 2) {
        Pass_f64 p = PASS(double, bs, in, out);
        pass_backward_f64(&p, start, stop);
    } else {
        Pass_f32 p = PASS(float, bs, in, out);
        pass_backward_f32(&p, start, stop);
    }
    Py_END_ALLOW_THREADS
    release_all(&bs);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"forward", quantize_forward, METH_VARARGS,
     "forward(src, tables, dst, noise, soft, surrogate, params, r0, r1, e0, e1): dst = rint(src / Q), or the surrogate's value "
     "with soft, for rows [r0, r1) and elements [e0, e1)."},
    {"backward", quantize_backward, METH_VARARGS,
     "backward(grad, src, tables, dst, partials, surrogate, params, chunk, r0, r1, e0, e1): dst = grad r'(u) / Q and, with "
     "partials, the table gradient's sums per chunk of chunk elements."},
    {"slope", quantize_slope, METH_VARARGS,
     "slope(src, tables, dst, surrogate, params, r0, r1, e0, e1): dst = r'(src / Q), the surrogate's derivative, for rows [r0, r1) "
     "and elements [e0, e1)."},
    {"fold", fold, METH_VARARGS, "fold(partials, out): out = the partial sums of each row added in chunk order."},
    {"block_forward", block_forward, METH_VARARGS,
     "block_forward(src, dst, tables, slopes, noise, c, ct, soft, surrogate, params, start, stop): for blocks [start, stop) of "
     "src ((P, BY, BX, 8, 8) samples), dst = clamp(C^T (v Q) C + 128) with v = rint(F / Q) or r(F / Q), F = C (X - 128) C^T, "
     "and r'(F / Q) into slopes where given."},
    {"block_backward", block_backward, METH_VARARGS,
     "block_backward(grad, dst, tables, slopes, c, ct, start, stop): dst = the gradient of block_forward's src from grad, its "
     "dst's, with the slopes it saved (None: r' = 1)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_quantize", "Compiled loops of float and soft mode's quantizer and its gradient.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__quantize(void) { return PyModule_Create(&module); }
