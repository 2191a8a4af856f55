// Sextant — an embedded vector database. Licensed under Apache-2.0.

#include "sextant_kernels.h"

double sx_sumsq_f64(const float *v, size_t d) {
    // Four accumulators in a fixed order: the result is the same on every machine and in every build
    // (the compiler may put lanes in SIMD registers, never reorder a lane's additions).
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 4 <= d; i += 4) {
        a0 += (double)v[i] * (double)v[i];
        a1 += (double)v[i + 1] * (double)v[i + 1];
        a2 += (double)v[i + 2] * (double)v[i + 2];
        a3 += (double)v[i + 3] * (double)v[i + 3];
    }
    double s = (a0 + a1) + (a2 + a3);
    for (; i < d; i++) s += (double)v[i] * (double)v[i];
    return s;
}
