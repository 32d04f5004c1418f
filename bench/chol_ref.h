// chol_ref.h: the host side of the ridge-solve workbenches (bench/chol_ab.cu on a GPU, bench/chol_emu.cpp
// on the host): test problems like the decomposition's and a long-double reference solve.
#pragma once
#include <math.h>
#include <stdint.h>
#include <vector>

static uint64_t rng_state = 0x1234567;
static double randn() {
    auto u = [] {
        rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
        return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
    };
    return sqrt(-2 * log(u())) * cos(6.283185307179586 * u());
}
// x = (G + lambda^2 I)^{-1} b in long double (the reference)
static void ref_solve(std::vector<double> &x, const std::vector<double> &G, const std::vector<double> &b, int n, double eps_r) {
    std::vector<long double> L((size_t)n * n);
    long double tr = 0;
    for (int i = 0; i < n; i++) tr += G[(size_t)i * n + i];
    const long double lam = eps_r * sqrtl(tr) / 2;
    for (size_t e = 0; e < L.size(); e++) L[e] = G[e];
    for (int i = 0; i < n; i++) L[(size_t)i * n + i] += lam * lam;
    for (int j = 0; j < n; j++) {
        long double s = L[(size_t)j * n + j];
        for (int p = 0; p < j; p++) s -= L[(size_t)j * n + p] * L[(size_t)j * n + p];
        L[(size_t)j * n + j] = sqrtl(s);
        for (int i = j + 1; i < n; i++) {
            long double v = L[(size_t)i * n + j];
            for (int p = 0; p < j; p++) v -= L[(size_t)i * n + p] * L[(size_t)j * n + p];
            L[(size_t)i * n + j] = v / L[(size_t)j * n + j];
        }
    }
    std::vector<long double> y(n);
    for (int i = 0; i < n; i++) {
        long double s = b[i];
        for (int p = 0; p < i; p++) s -= L[(size_t)i * n + p] * y[p];
        y[i] = s / L[(size_t)i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        long double s = y[i];
        for (int p = i + 1; p < n; p++) s -= L[(size_t)p * n + i] * y[p];
        y[i] = s / L[(size_t)i * n + i];
    }
    x.assign(n, 0);
    for (int i = 0; i < n; i++) x[i] = (double)y[i];
}

static double rel_err(const std::vector<double> &x, const std::vector<double> &r) {
    double e = 0, m = 0;
    for (size_t i = 0; i < r.size(); i++) e = fmax(e, fabs(x[i] - r[i])), m = fmax(m, fabs(r[i]));
    return e / m;
}

// G = A^T A and b = A^T r for A (M = 40 n, n) with column scales over three decades and a common
// factor every 7th column (condition of G + ridge ~1e6, as the decomposition's), r Gaussian
static void make_problem(std::vector<double> &G, std::vector<double> &b, int n) {
    const int M = 40 * n;
    std::vector<double> A((size_t)M * n);
    G.assign((size_t)n * n, 0.0), b.assign(n, 0.0);
    for (int r = 0; r < M; r++) {
        const double common = randn();
        for (int j = 0; j < n; j++)
            A[(size_t)r * n + j] = pow(10.0, -3.0 * j / n) * (randn() + (j % 7 == 0 ? 3 * common : 0.0));
    }
    for (int r = 0; r < M; r++) {
        const double br = randn();
        for (int i = 0; i < n; i++) {
            const double ai = A[(size_t)r * n + i];
            b[i] += ai * br;
            for (int j = 0; j < n; j++) G[(size_t)i * n + j] += ai * A[(size_t)r * n + j];
        }
    }
}
