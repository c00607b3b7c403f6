/* The element-wise parts of a minGRU layer's training step, forward and backward, fused: seqmodels.native builds it.
 *
 * Why C: on a 2-core CPU, a layer of the 8 x 208 minGRU spent about 62 ms of a training step in its causal
 * convolution (28 ms: four shifted multiply-adds, a concatenation and their backward) and its gates and scan
 * (34 ms: casts, a sigmoid, two products, a 128-step loop of small additions and their backward), against
 * 35 ms for its two matrix products. Each of those torch operations reads and writes whole (T, B, H) tensors;
 * here each direction is one pass over the data, with every intermediate in registers.
 *
 * Layouts are time-major and contiguous, as in LinearRecurrence: x, u, h (T, B, H); pre (T, B, 2H) with the
 * update gate's pre-activation first and the candidate second. Tensors marked "bf" are bf16 when the flag is 1
 * (what bf16 autocast gives the matrix products) and fp32 when it is 0; the state, h and gradients of fp32
 * tensors stay fp32. Work is split over the batch between threads (pthreads); rows of one batch element never
 * meet another's, so no thread writes where another does, except the convolution filter's gradient, which each
 * thread sums on its own and Python adds up.
 *
 * Dropout for every character model (seqmodels.dropout) lives here too: torch drew its mask at some 50 times the
 * cost of the multiply it feeds; here the mask's bytes come from a counter-based generator in the same pass.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define MAX_THREADS 64
#define INLINE static inline __attribute__((always_inline))

INLINE float from_bf16(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

INLINE uint16_t to_bf16(float f) { /* round to nearest even, as torch's cast; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

INLINE float load(const void *p, int64_t i, int bf) {
    return bf ? from_bf16(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

INLINE void store(void *p, int64_t i, float v, int bf) {
    if (bf) ((uint16_t *)p)[i] = to_bf16(v);
    else ((float *)p)[i] = v;
}

/* p + i elements of p's type, for the row pointers of the loops below. Those loops carry `#pragma GCC ivdep`:
 * with fp32 tensors gcc could not prove the rows apart and fell back to scalar code (measured: the minGRU's
 * backward 21.6 ms instead of 4.6 ms for one 128 x 64 x 208 layer) */
INLINE const void *at_c(const void *p, int64_t i, int bf) {
    return bf ? (const void *)((const uint16_t *)p + i) : (const void *)((const float *)p + i);
}

INLINE void *at_m(void *p, int64_t i, int bf) { return bf ? (void *)((uint16_t *)p + i) : (void *)((float *)p + i); }

INLINE float sigmoid(float v) { return 1.f / (1.f + expf(-v)); }

typedef struct {
    const void *pre, *x, *grad_u; /* "bf" inputs */
    const float *h0, *h, *grad_h, *conv0, *w, *xf;
    void *u, *grad_pre;            /* "bf" outputs */
    float *h_out, *grad_h0, *grad_x, *grad_conv0, *grad_w;
    int64_t T, B, H, k;
    int bf;
    uint64_t seed; /* dropout (T holds its element count): the mask's seed, byte threshold and kept elements' scale */
    int drop;
    float scale;
} Args;

typedef void (*Work)(const Args *, int64_t b0, int64_t b1, int tid);

typedef struct {
    Work fn;
    const Args *a;
    int64_t b0, b1;
    int tid;
} Job;

static void *run_job(void *p) {
    Job *j = (Job *)p;
    j->fn(j->a, j->b0, j->b1, j->tid);
    return NULL;
}

/* fn over units [0, n) (batch elements, or the dropout's 8-element words) in `threads` contiguous ranges;
 * the calling thread takes the first */
static void parallel(Work fn, const Args *a, int64_t n, int threads) {
    if (threads > n) threads = (int)n;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    Job jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 0; i < threads; i++)
        jobs[i] = (Job){fn, a, n * i / threads, n * (i + 1) / threads, i};
    for (int i = 1; i < threads; i++) started[i] = pthread_create(&ids[i], NULL, run_job, &jobs[i]) == 0;
    run_job(&jobs[0]);
    for (int i = 1; i < threads; i++) {
        if (started[i]) pthread_join(ids[i], NULL);
        else run_job(&jobs[i]); /* no thread to be had: do its share here */
    }
}

/* row p of the padded input: the previous chunk's last k-1 inputs (conv0), then x */
INLINE const float *padded_row(const Args *a, int64_t p) {
    int64_t BH = a->B * a->H;
    return p < a->k - 1 ? a->conv0 + p * BH : a->xf + (p - (a->k - 1)) * BH;
}

/* u[t] = sum_j w[j] * padded[t + j] (depthwise, causal) */
INLINE void conv_forward_rows(const Args *a, int64_t b0, int64_t b1, int bf) {
    const int64_t T = a->T, B = a->B, H = a->H, k = a->k;
    float acc[H];
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = b0; b < b1; b++) {
            for (int64_t c = 0; c < H; c++) acc[c] = 0.f;
            for (int64_t j = 0; j < k; j++) {
                const float *restrict in = padded_row(a, t + j) + b * H, *restrict w = a->w + j * H;
                for (int64_t c = 0; c < H; c++) acc[c] += w[c] * in[c];
            }
            const int64_t at = (t * B + b) * H;
            for (int64_t c = 0; c < H; c++) store(a->u, at + c, acc[c], bf);
        }
}

static void conv_forward_work(const Args *a, int64_t b0, int64_t b1, int tid) {
    (void)tid;
    if (a->bf) conv_forward_rows(a, b0, b1, 1);
    else conv_forward_rows(a, b0, b1, 0);
}

/* grad_padded[p] = sum_j w[j] grad_u[p - j]; grad_w[j] = sum_t grad_u[t] padded[t + j] (this thread's part) */
INLINE void conv_backward_rows(const Args *a, int64_t b0, int64_t b1, int tid, int bf) {
    const int64_t T = a->T, B = a->B, H = a->H, k = a->k, BH = B * H;
    float *gw = a->grad_w + (int64_t)tid * k * H;
    memset(gw, 0, sizeof(float) * k * H);
    for (int64_t p = 0; p < T + k - 1; p++) {
        float *row = p < k - 1 ? a->grad_conv0 + p * BH : a->grad_x + (p - (k - 1)) * BH;
        for (int64_t b = b0; b < b1; b++) {
            float *restrict out = row + b * H;
            const float *restrict in = padded_row(a, p) + b * H;
            for (int64_t c = 0; c < H; c++) out[c] = 0.f;
            for (int64_t j = 0; j < k; j++) {
                int64_t t = p - j;
                if (t < 0 || t >= T) continue;
                const void *restrict g = at_c(a->grad_u, (t * B + b) * H, bf);
                const float *restrict w = a->w + j * H;
                float *restrict gwj = gw + j * H;
                #pragma GCC ivdep /* rows never overlap */
                for (int64_t c = 0; c < H; c++) {
                    out[c] += w[c] * load(g, c, bf);
                    gwj[c] += load(g, c, bf) * in[c];
                }
            }
        }
    }
}

static void conv_backward_work(const Args *a, int64_t b0, int64_t b1, int tid) {
    if (a->bf) conv_backward_rows(a, b0, b1, tid, 1);
    else conv_backward_rows(a, b0, b1, tid, 0);
}

/* z = sigmoid(pre_z), h_t = h_(t-1) + z (cand - h_(t-1)) */
INLINE void mingru_forward_rows(const Args *a, int64_t b0, int64_t b1, int bf) {
    const int64_t T = a->T, B = a->B, H = a->H;
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = b0; b < b1; b++) {
            const float *restrict prev = t ? a->h_out + ((t - 1) * B + b) * H : a->h0 + b * H;
            float *restrict h = a->h_out + (t * B + b) * H;
            const int64_t at = (t * B + b) * 2 * H;
            const void *restrict zp = at_c(a->pre, at, bf), *restrict cand = at_c(a->pre, at + H, bf);
            #pragma GCC ivdep /* rows never overlap */
            for (int64_t c = 0; c < H; c++) {
                float z = sigmoid(load(zp, c, bf));
                h[c] = prev[c] + z * (load(cand, c, bf) - prev[c]);
            }
        }
}

static void mingru_forward_work(const Args *a, int64_t b0, int64_t b1, int tid) {
    (void)tid;
    if (a->bf) mingru_forward_rows(a, b0, b1, 1);
    else mingru_forward_rows(a, b0, b1, 0);
}

/* Backward in time: g_t = dL/dh_t + (1 - z_(t+1)) g_(t+1); dL/dcand_t = z_t g_t;
 * dL/dpre_z = g_t (cand_t - h_(t-1)) z_t (1 - z_t). grad_h0 carries (1 - z_(t+1)) g_(t+1) and ends as dL/dh0. */
INLINE void mingru_backward_rows(const Args *a, int64_t b0, int64_t b1, int bf) {
    const int64_t T = a->T, B = a->B, H = a->H;
    for (int64_t b = b0; b < b1; b++)
        for (int64_t c = 0; c < H; c++) a->grad_h0[b * H + c] = 0.f;
    for (int64_t t = T - 1; t >= 0; t--)
        for (int64_t b = b0; b < b1; b++) {
            const float *restrict prev = t ? a->h + ((t - 1) * B + b) * H : a->h0 + b * H;
            const float *restrict gh = a->grad_h + (t * B + b) * H;
            float *restrict carry = a->grad_h0 + b * H;
            const int64_t at = (t * B + b) * 2 * H;
            const void *restrict zp = at_c(a->pre, at, bf), *restrict cand = at_c(a->pre, at + H, bf);
            void *restrict gz = at_m(a->grad_pre, at, bf), *restrict gc = at_m(a->grad_pre, at + H, bf);
            #pragma GCC ivdep /* rows never overlap */
            for (int64_t c = 0; c < H; c++) {
                float z = sigmoid(load(zp, c, bf)), g = gh[c] + carry[c];
                store(gz, c, g * (load(cand, c, bf) - prev[c]) * z * (1.f - z), bf);
                store(gc, c, g * z, bf);
                carry[c] = g * (1.f - z);
            }
        }
}

static void mingru_backward_work(const Args *a, int64_t b0, int64_t b1, int tid) {
    (void)tid;
    if (a->bf) mingru_backward_rows(a, b0, b1, 1);
    else mingru_backward_rows(a, b0, b1, 0);
}

/* splitmix64 of the word's index: a counter-based generator, so the backward pass draws the forward's mask
 * again from the seed instead of keeping it, and threads need no shared state */
INLINE uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* out[i] = x[i] * scale where byte i of the stream mix(seed + w * golden), w = 0, 1, ... (little-endian words)
 * is >= drop, else 0: the rule of byte_dropout. In blocks: the words first, then the bytes, so both loops vectorise. */
INLINE void dropout_words(const Args *a, int64_t w0, int64_t w1, int bf) {
    const int64_t n = a->T;
    const int drop = a->drop;
    const float scale = a->scale;
    const void *x = a->x;
    void *out = a->u;
    uint64_t r[512];
    const uint8_t *bytes = (const uint8_t *)r;
    for (int64_t wb = w0; wb < w1; wb += 512) {
        const int64_t words = w1 - wb < 512 ? w1 - wb : 512;
        for (int64_t w = 0; w < words; w++) r[w] = mix(a->seed + (uint64_t)(wb + w) * 0x9E3779B97F4A7C15ull);
        const int64_t i0 = wb * 8, i1 = (wb + words) * 8 < n ? (wb + words) * 8 : n;
#pragma GCC ivdep /* x and out are the same tensor or apart */
        for (int64_t i = i0; i < i1; i++) { /* read x either way: a conditional load does not vectorise */
            float keep = bytes[i - i0] >= drop ? scale : 0.f;
            store(out, i, load(x, i, bf) * keep, bf);
        }
    }
}

static void dropout_work(const Args *a, int64_t w0, int64_t w1, int tid) {
    (void)tid;
    if (a->bf) dropout_words(a, w0, w1, 1);
    else dropout_words(a, w0, w1, 0);
}

/* The entry points. Every pointer is to a contiguous tensor of the layout above; grad_w has threads x k x H floats. */
void conv_forward(const float *conv0, const float *x, const float *w, void *u, int64_t T, int64_t B, int64_t H,
                  int64_t k, int bf, int threads) {
    Args a = {.conv0 = conv0, .xf = x, .w = w, .u = u, .T = T, .B = B, .H = H, .k = k, .bf = bf};
    parallel(conv_forward_work, &a, B, threads);
}

void conv_backward(const float *conv0, const float *x, const float *w, const void *grad_u, float *grad_conv0,
                   float *grad_x, float *grad_w, int64_t T, int64_t B, int64_t H, int64_t k, int bf, int threads) {
    Args a = {.conv0 = conv0, .xf = x, .w = w, .grad_u = grad_u, .grad_conv0 = grad_conv0, .grad_x = grad_x,
              .grad_w = grad_w, .T = T, .B = B, .H = H, .k = k, .bf = bf};
    parallel(conv_backward_work, &a, B, threads);
}

void mingru_forward(const void *pre, const float *h0, float *h, int64_t T, int64_t B, int64_t H, int bf,
                    int threads) {
    Args a = {.pre = pre, .h0 = h0, .h_out = h, .T = T, .B = B, .H = H, .bf = bf};
    parallel(mingru_forward_work, &a, B, threads);
}

void mingru_backward(const void *pre, const float *h0, const float *h, const float *grad_h, void *grad_pre,
                     float *grad_h0, int64_t T, int64_t B, int64_t H, int bf, int threads) {
    Args a = {.pre = pre, .h0 = h0, .h = h, .grad_h = grad_h, .grad_pre = grad_pre, .grad_h0 = grad_h0,
              .T = T, .B = B, .H = H, .bf = bf};
    parallel(mingru_backward_work, &a, B, threads);
}

/* Dropout of n elements, forward (x, out) or backward (the gradients, with the same seed): the same call. */
void dropout(const void *x, void *out, int64_t n, uint64_t seed, int drop, float scale, int bf, int threads) {
    Args a = {.x = x, .u = out, .T = n, .seed = seed, .drop = drop, .scale = scale, .bf = bf};
    parallel(dropout_work, &a, (n + 7) / 8, threads);
}

