/* The int8 products of one generated character, in seqmodels/native's C kernel, for two models of the same size:
 * the shipped LSTM (2 x 512: W_hh0, W_ih1, W_hh1 and the head; layer 0's input matrix is a table lookup) and the
 * shipped minGRU (8 x 208: gates, out, MLP up and down per layer, and the head). Both read about 3.1 MB of int8
 * weights a character. bench/int8_products.py builds and runs it; it prints JSON. */
#include "../seqmodels/native/linear_rnn_step.c"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct { int out, in; int8_t *w; float *scale, *bias; int32_t *wsum; } Matrix;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static Matrix matrix(int out, int in) {
    Matrix m = {out, in};
    size_t rows = (out + 15) / 16 * 16, bytes = rows * ((in + 3) / 4 * 4);
    m.w = aligned_alloc(64, (bytes + 63) / 64 * 64);
    for (size_t i = 0; i < bytes; i++) m.w[i] = (int8_t)(rand() % 255 - 127);
    m.scale = calloc(rows, sizeof(float)), m.bias = calloc(rows, sizeof(float)), m.wsum = calloc(rows, sizeof(int32_t));
    for (size_t i = 0; i < rows; i++) m.scale[i] = 0.01f;
    return m;
}

/* microseconds for one character's products, best of 5 runs of `reps` characters */
static double products_us(const Matrix *ms, int n, int reps) {
    static float x[4096], y[4096];
    static uint8_t xu[4096];
    for (int i = 0; i < 4096; i++) x[i] = (rand() % 1000) / 1000.f - 0.5f;
    double best = 1e30;
    for (int run = 0; run < 5; run++) {
        double t0 = now();
        for (int r = 0; r < reps; r++)
            for (int j = 0; j < n; j++) {
                int in4 = (ms[j].in + 3) / 4;
                gemv(ms[j].w, ms[j].scale, ms[j].bias, ms[j].wsum, xu, quantize(x, xu, ms[j].in, in4), y, ms[j].out, in4);
                x[0] = y[0] * 1e-3f; /* each product waits for the last, as in a step */
            }
        double us = (now() - t0) / reps * 1e6;
        if (us < best) best = us;
    }
    return best;
}

int main(void) {
    Matrix lstm[4] = {matrix(2048, 512), matrix(2048, 512), matrix(2048, 512), matrix(65, 512)};
    Matrix mingru[33];
    for (int l = 0; l < 8; l++) {
        mingru[4 * l] = matrix(416, 208), mingru[4 * l + 1] = matrix(208, 208);
        mingru[4 * l + 2] = matrix(624, 208), mingru[4 * l + 3] = matrix(208, 624);
    }
    mingru[32] = matrix(65, 208);
    double a = 1e30, b = 1e30;
    for (int turn = 0; turn < 3; turn++) {  /* the two take turns, so a busy moment slows both */
        double x = products_us(lstm, 4, 300), y = products_us(mingru, 33, 300);
        a = x < a ? x : a, b = y < b ? y : b;
    }
    printf("{\"kernel\": %d, \"lstm_products_us\": %.0f, \"mingru_products_us\": %.0f}\n", KERNEL, a, b);
    return 0;
}
