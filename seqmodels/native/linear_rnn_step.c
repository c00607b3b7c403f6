/* One character of a LinearRNNLM (minGRU, minLSTM, RG-LRU) in one C call: seqmodels.native compiles it.
 *
 * Why C: at one character per call, the TorchScript step spends most of its time dispatching some 200 small
 * operations (33 int8 products and the element-wise work around them for the 8-layer minGRU), not computing.
 * Here the whole step is one call, and the products use the CPU's int8 dot-product instructions directly.
 *
 * Weights are int8, symmetric, one scale per output row (as fbgemm's), packed as [out/16][in/4][16][4] with
 * zero padding, so that one 512-bit AVX-512 VNNI instruction (or two AVX2 ones) multiplies four inputs by
 * sixteen rows. Each product's input vector is quantised on the fly to unsigned 8 bits (7 under AVX2, whose
 * pairwise 16-bit sums would otherwise saturate), one scale per vector, as fbgemm's dynamic quantisation does.
 * Everything else (norms, convolution, gates, GELU) is fp32; GELU is its tanh form, as in the TorchScript step.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512VNNI__) && defined(__AVX512F__)
#include <immintrin.h>
#define KERNEL 2
#define QMAX 127
#elif defined(__AVX2__)
#include <immintrin.h>
#define KERNEL 1
#define QMAX 63
#else
#define KERNEL 0
#define QMAX 63
#endif
#define ZERO (QMAX + 1) /* the quantised input's zero point: inputs are ZERO + round(x / sx), in [1, 2 QMAX + 1] */

int native_kernel(void) { return KERNEL; } /* 2: AVX-512 VNNI, 1: AVX2, 0: plain C */

/* y[o] = scale[o] sx (sum_k xu_k w_ok - ZERO wsum_o) + bias[o] for o < out; scale, bias and wsum are padded to 16 */
static void gemv(const int8_t *restrict w, const float *restrict scale, const float *restrict bias,
                 const int32_t *restrict wsum, const uint8_t *restrict xu, float sx, float *restrict y, int out,
                 int in4) {
    const int32_t *x32 = (const int32_t *)xu;
    for (int ob = 0; ob < (out + 15) / 16; ob++) {
        int32_t acc[16];
#if KERNEL == 2
        const __m512i *wb = (const __m512i *)(w + (int64_t)ob * in4 * 64);
        /* four chains: one dot-product instruction's latency is several of its issue slots */
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        int k = 0;
        for (; k + 3 < in4; k += 4) {
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(x32[k]), _mm512_loadu_si512(wb + k));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(x32[k + 1]), _mm512_loadu_si512(wb + k + 1));
            a2 = _mm512_dpbusd_epi32(a2, _mm512_set1_epi32(x32[k + 2]), _mm512_loadu_si512(wb + k + 2));
            a3 = _mm512_dpbusd_epi32(a3, _mm512_set1_epi32(x32[k + 3]), _mm512_loadu_si512(wb + k + 3));
        }
        for (; k < in4; k++) a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(x32[k]), _mm512_loadu_si512(wb + k));
        _mm512_storeu_si512(acc, _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)));
#elif KERNEL == 1
        const __m256i *wb = (const __m256i *)(w + (int64_t)ob * in4 * 64);
        const __m256i ones = _mm256_set1_epi16(1);
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();  /* rows 0-7 and 8-15 */
        for (int k = 0; k < in4; k++) {
            __m256i xb = _mm256_set1_epi32(x32[k]);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(xb, _mm256_loadu_si256(wb + 2 * k)), ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(xb, _mm256_loadu_si256(wb + 2 * k + 1)), ones));
        }
        _mm256_storeu_si256((__m256i *)acc, a0);
        _mm256_storeu_si256((__m256i *)(acc + 8), a1);
#else
        const int8_t *wb = w + (int64_t)ob * in4 * 64;
        memset(acc, 0, sizeof acc);
        for (int k = 0; k < in4; k++)
            for (int r = 0; r < 16; r++)
                for (int j = 0; j < 4; j++) acc[r] += (int32_t)xu[4 * k + j] * wb[(k * 16 + r) * 4 + j];
#endif
        int n = out - ob * 16 < 16 ? out - ob * 16 : 16;
        for (int r = 0; r < n; r++) {
            int o = ob * 16 + r;
            y[o] = (float)(acc[r] - ZERO * wsum[o]) * (sx * scale[o]) + bias[o];
        }
    }
}

/* xu = ZERO + round(x / sx), padded with ZERO (a zero input) to 4 in4; returns sx */
static float quantize(const float *restrict x, uint8_t *restrict xu, int n, int in4) {
    float amax = 0.f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    float sx = amax > 0.f ? amax / QMAX : 1.f, inv = 1.f / sx;
    for (int i = 0; i < n; i++) xu[i] = (uint8_t)((int)lrintf(x[i] * inv) + ZERO);
    for (int i = n; i < 4 * in4; i++) xu[i] = ZERO;
    return sx;
}

static void layer_norm(const float *restrict x, const float *restrict g, const float *restrict b, float *restrict y,
                       int n) {
    float mean = 0.f, var = 0.f;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.f / sqrtf(var / n + 1e-5f);  /* nn.LayerNorm's eps */
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * g[i] + b[i];
}

static inline float sigmoid(float v) { return 1.f / (1.f + expf(-v)); }

/* Linear number j of the model on x (nin numbers) into y (nout); xu is the quantised input's buffer */
#define LINEAR(j, x, nin, y, nout) \
    gemv(w[j], scale[j], bias[j], wsum[j], xu, quantize(x, xu, nin, (nin + 3) / 4), y, nout, (nin + 3) / 4)

/* tokens (B,) -> logits (B, V) and the new state, for a model of L layers of width H; cell 0 minGRU, 1 minLSTM,
 * 2 RG-LRU; K the convolution's width, M the MLP's inner width. Linears per layer: gates, out, up, down; then the
 * head. norms: per layer (w1, b1, w2, b2), then the final norm's (w, b). States are (L, B, H) and
 * (L, B, K-1, H), read from hs/convs and written to hs_out/convs_out. scratch: 7H + M floats; xu: 4 ceil(max(H, M) / 4) bytes.
 * Returns 0, or -1 (and does nothing) if a token is not in [0, V). */
int linear_rnn_step(int cell, int L, int H, int V, int K, int M, int B, const float *emb,
                     const float *const *norms, const float *const *conv, const float *const *log_decay,
                     const int8_t *const *w, const float *const *scale, const float *const *bias,
                     const int32_t *const *wsum, const int64_t *tokens, const float *hs, const float *convs,
                     float *hs_out, float *convs_out, float *logits, float *scratch, uint8_t *xu) {
    for (int b = 0; b < B; b++)
        if (tokens[b] < 0 || tokens[b] >= V) return -1;  /* an unknown id: nothing is read or written */
    int G = (cell == 1 ? 3 : 2) * H;
    float *x = scratch, *n = x + H, *u = n + H, *pre = u + H, *t = pre + G, *up = t + H;
    for (int b = 0; b < B; b++) {
        memcpy(x, emb + tokens[b] * (int64_t)H, H * sizeof(float));
        for (int l = 0; l < L; l++) {
            const float *h0 = hs + ((int64_t)l * B + b) * H, *c = conv[l];
            const float *window = convs + ((int64_t)l * B + b) * (K - 1) * H;  /* the last K-1 inputs, oldest first */
            float *h1 = hs_out + ((int64_t)l * B + b) * H, *window_out = convs_out + ((int64_t)l * B + b) * (K - 1) * H;
            layer_norm(x, norms[4 * l], norms[4 * l + 1], n, H);
            for (int i = 0; i < H; i++) {
                float s = c[(K - 1) * H + i] * n[i];
                for (int j = 0; j < K - 1; j++) s += c[j * H + i] * window[j * H + i];
                u[i] = s;
            }
            if (K > 1) {
                memcpy(window_out, window + H, (size_t)(K - 2) * H * sizeof(float));
                memcpy(window_out + (K - 2) * H, n, H * sizeof(float));
            }
            LINEAR(4 * l, u, H, pre, G);
            if (cell == 0) {  /* h + z (h~ - h) */
                for (int i = 0; i < H; i++) h1[i] = h0[i] + sigmoid(pre[i]) * (pre[H + i] - h0[i]);
            } else if (cell == 1) {  /* f' h + i' h~, f' + i' = 1 */
                for (int i = 0; i < H; i++) {
                    float f = sigmoid(pre[i]), in = sigmoid(pre[H + i]);
                    h1[i] = (f * h0[i] + in * pre[2 * H + i]) / (f + in);
                }
            } else {  /* a h + sqrt(1 - a^2) (i x), a = sigmoid(L)^(8 r) */
                for (int i = 0; i < H; i++) {
                    float log_a = 8.f * sigmoid(pre[i]) * log_decay[l][i], q = -expm1f(2.f * log_a);
                    h1[i] = expf(log_a) * h0[i] + sqrtf(q > 1e-12f ? q : 1e-12f) * (sigmoid(pre[H + i]) * u[i]);
                }
            }
            LINEAR(4 * l + 1, h1, H, t, H);
            for (int i = 0; i < H; i++) x[i] += t[i];
            layer_norm(x, norms[4 * l + 2], norms[4 * l + 3], n, H);
            LINEAR(4 * l + 2, n, H, up, M);
            for (int i = 0; i < M; i++) {
                float v = up[i];
                up[i] = 0.5f * v * (1.f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
            }
            LINEAR(4 * l + 3, up, M, t, H);
            for (int i = 0; i < H; i++) x[i] += t[i];
        }
        layer_norm(x, norms[4 * L], norms[4 * L + 1], n, H);
        LINEAR(4 * L, n, H, logits + (int64_t)b * V, V);
    }
    return 0;
}
