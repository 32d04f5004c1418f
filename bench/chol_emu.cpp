// chol_emu.cpp: a host emulation of chol::chol_solve_kernel (cuda/chol.cuh), written while no GPU was
// lent: the kernel's phases in order, with its slot map, tile index (tix), the lane maps of the double
// mma fragments (CuTe's SM80_8x8x4_F64F64F64F64_TN traits), the diagonal factor's lanes as vectors and
// the back substitution, scratch filled with NaN so that any read of an unwritten element shows.
// Checks the algebra and the indexing against a long-double Cholesky; says nothing about the GPU's
// behaviour (barriers, bank conflicts, timing): bench/chol_ab.cu does that on a GPU. Kept in step with
// chol.cuh by hand.
//   g++ -O2 -ffp-contract=off bench/chol_emu.cpp -o build/chol_emu && build/chol_emu
#include <cmath>
#include <cstdio>
#include <vector>
#include <cstdint>

#include "chol_ref.h"
constexpr int CT = 32, MAXT = 8, LDT = 36, NSLOT = 20, THREADS = 256, NW = THREADS / 32, TILE = CT * LDT;
static int tix(int r, int j) { return r * LDT + (j ^ ((r >> 2) & 3)); }
// dmma emulation over a warp: acc[lane][2] += A(8x4) B(4x8), given per-lane a, b
static void dmma_warp(double acc[32][2], const double a[32], const double b[32]) {
    double A[8][4], B[4][8];
    for (int l = 0; l < 32; l++) A[l / 4][l % 4] = a[l], B[l % 4][l / 4] = b[l];
    for (int l = 0; l < 32; l++)
        for (int v = 0; v < 2; v++) {
            int m = l / 4, n = 2 * (l % 4) + v;
            double s = 0;
            for (int k = 0; k < 4; k++) s += A[m][k] * B[k][n];
            acc[l][v] += s;
        }
}
// mma_32x16 for one warp: acc[lane][fr][fc][2]
static void mma_32x16(double acc[32][4][2][2], const double *A, const double *B, int c0) {
    for (int kk = 0; kk < CT; kk += 4) {
        double a[4][32], b[2][32];
        for (int l = 0; l < 32; l++) {
            int g = l >> 2, t = l & 3;
            for (int fr = 0; fr < 4; fr++) a[fr][l] = A[tix(8 * fr + g, kk + t)];
            for (int fc = 0; fc < 2; fc++) b[fc][l] = B[tix(c0 + 8 * fc + g, kk + t)];
        }
        for (int fr = 0; fr < 4; fr++)
            for (int fc = 0; fc < 2; fc++) {
                double c[32][2];
                for (int l = 0; l < 32; l++) c[l][0] = acc[l][fr][fc][0], c[l][1] = acc[l][fr][fc][1];
                dmma_warp(c, a[fr], b[fc]);
                for (int l = 0; l < 32; l++) acc[l][fr][fc][0] = c[l][0], acc[l][fr][fc][1] = c[l][1];
            }
    }
}
static int emu(std::vector<double> &x, const std::vector<double> &G, const std::vector<double> &rhs, int n, double eps_r) {
    std::vector<double> sm((NSLOT + 1) * TILE + 2 * MAXT * CT + THREADS, NAN);
    double *tiles = sm.data(), *Mt = tiles + NSLOT * TILE, *y = Mt + TILE, *xs = y + MAXT * CT, *red = xs + MAXT * CT;
    double rk[CT];
    int slot[MAXT][MAXT], fr[NSLOT], bad = 0;
    const int nt = (n + CT - 1) / CT, np = nt * CT;
    std::vector<double> Lg((size_t)np * np, NAN), Mg((size_t)np * CT, NAN);
    double tr = 0;
    for (int i = 0; i < n; i++) tr += G[(size_t)i * n + i];
    const double lam = eps_r * sqrt(tr) / 2, lam2 = lam * lam;
    {
        int nf = 0;
        for (int s = NSLOT - 1; s >= 0; s--) fr[nf++] = s;
        for (int K = 0; K < nt; K++) {
            for (int I = K; I < nt; I++) {
                if (nf <= 0) { printf("slot underflow\n"); return -2; }
                slot[I][K] = fr[--nf];
            }
            for (int J = 0; J <= K; J++) fr[nf++] = slot[K][J];
        }
    }
    for (int i = 0; i < np; i++) y[i] = i < n ? rhs[i] : 0.0;
    // live check: at panel K, tiles (I,J) I>=K, J<=K must have distinct slots
    for (int K = 0; K < nt; K++) {
        int used[NSLOT] = {};
        for (int I = K; I < nt; I++) for (int J = 0; J <= K; J++) if (used[slot[I][J]]++) { printf("slot clash K=%d\n", K); return -3; }
    }
    for (int K = 0; K < nt; K++) {
        const int k0 = K * CT;
        double *D = tiles + slot[K][K] * TILE;
        for (int warp = 0; warp < NW; warp++)
            for (int task = warp; task < 2 * (nt - K); task += NW) {
                const int I = K + task / 2, c0 = 16 * (task & 1);
                static double acc[32][4][2][2];
                double gv[32][4][2][2];
                for (int l = 0; l < 32; l++) {
                    int g = l >> 2, t = l & 3;
                    for (int fr_ = 0; fr_ < 4; fr_++) for (int fc = 0; fc < 2; fc++) for (int e = 0; e < 2; e++) {
                        const int r = I * CT + 8 * fr_ + g, c = k0 + c0 + 8 * fc + 2 * t + e;
                        double v = r < n && c < n ? G[(size_t)r * n + c] : 0.0;
                        if (r == c) v += r < n ? lam2 : 1.0;
                        gv[l][fr_][fc][e] = v;
                        acc[l][fr_][fc][e] = 0;
                    }
                }
                for (int J = 0; J < K; J++) mma_32x16(acc, tiles + slot[I][J] * TILE, tiles + slot[K][J] * TILE, c0);
                double *P = tiles + slot[I][K] * TILE;
                for (int l = 0; l < 32; l++) {
                    int g = l >> 2, t = l & 3;
                    for (int fr_ = 0; fr_ < 4; fr_++) for (int fc = 0; fc < 2; fc++) for (int e = 0; e < 2; e++)
                        P[tix(8 * fr_ + g, c0 + 8 * fc + 2 * t + e)] = gv[l][fr_][fc][e] - acc[l][fr_][fc][e];
                }
            }
        // --- sync; warp 0: the factor with the inverse's columns beside it (lanes as vectors), column p
        // of L through Mt (column-major, stride LDT); warp 1: rk
        {
            double a[32][CT], v[32][CT], nxt[32];
            for (int l = 0; l < 32; l++) for (int j = 0; j < CT; j++) a[l][j] = D[tix(l, j)], v[l][j] = j == l ? 1.0 : 0.0;
            for (int l = 0; l < 32; l++) nxt[l] = a[l][0];
            for (int p = 0; p < CT; p++) {
                double piv = nxt[p];
                if (!(piv > 0)) { bad = 1; piv = 1; }
                const double rinv = 1 / sqrt(piv), lpp = piv * rinv;
                double lv[32];
                for (int l = 0; l < 32; l++) lv[l] = l == p ? lpp : l > p ? a[l][p] * rinv : 0.0;
                if (p + 1 < CT) for (int l = 0; l < 32; l++) nxt[l] = std::fma(-lv[l], lv[l], a[l][p + 1]);
                for (int l = 0; l < 32; l++) Mt[p * LDT + l] = lv[l];
                for (int l = 0; l < 32; l++) v[l][p] *= rinv;
                for (int j = p + 1; j < CT; j++)
                    for (int l = 0; l < 32; l++) {
                        a[l][j] = std::fma(-lv[l], Mt[p * LDT + j], a[l][j]);
                        v[l][j] = std::fma(-v[l][p], Mt[p * LDT + j], v[l][j]);
                    }
                if (p + 1 < CT && nxt[p + 1] != a[p + 1][p + 1]) { printf("nxt mismatch p=%d\n", p); return -4; }
            }
            for (int l = 0; l < 32; l++) for (int j = 0; j < CT; j++) { Mt[tix(j, l)] = v[l][j]; Mg[(size_t)(k0 + j) * CT + l] = v[l][j]; }
            for (int l = 0; l < 32; l++) for (int j = 0; j < CT; j++) D[tix(l, j)] = NAN;  // not kept: nothing reads L_KK
        }
        for (int lane = 0; lane < 32; lane++) {
            double s[4] = {y[k0 + lane], 0, 0, 0};
            for (int J = 0; J < K; J++) {
                const double *B = tiles + slot[K][J] * TILE;
                for (int p = 0; p < CT; p++) s[p & 3] -= B[tix(lane, p)] * y[J * CT + p];
            }
            rk[lane] = (s[0] + s[1]) + (s[2] + s[3]);
        }
        // --- sync; warp NW - 1: y_K = L_KK^{-1} rk from Mt
        for (int lane = 0; lane < 32; lane++) {
            double s[4] = {0, 0, 0, 0};
            for (int c = 0; c < CT; c++) s[c & 3] += Mt[tix(lane, c)] * rk[c];
            y[k0 + lane] = (s[0] + s[1]) + (s[2] + s[3]);
        }
        // --- sync; 3b: compute all, sync, write
        const int ntask = 2 * (nt - 1 - K);
        static double acc2[NW][2][32][4][2][2];
        for (int warp = 0; warp < NW; warp++)
            for (int u = 0; u < 2; u++) {
                for (int l = 0; l < 32; l++) for (int a = 0; a < 16; a++) (&acc2[warp][u][l][0][0][0])[a] = 0;
                const int task = warp + u * NW, I = K + 1 + task / 2;
                if (task < ntask) mma_32x16(acc2[warp][u], tiles + slot[I][K] * TILE, Mt, 16 * (task & 1));
            }
        for (int warp = 0; warp < NW; warp++)
            for (int u = 0; u < 2; u++) {
                const int task = warp + u * NW, I = K + 1 + task / 2, c0 = 16 * (task & 1);
                if (task >= ntask) continue;
                double *P = tiles + slot[I][K] * TILE;
                for (int l = 0; l < 32; l++) {
                    int g = l >> 2, t = l & 3;
                    for (int fr_ = 0; fr_ < 4; fr_++) for (int fc = 0; fc < 2; fc++) {
                        const int r = 8 * fr_ + g, c = c0 + 8 * fc + 2 * t;
                        P[tix(r, c)] = acc2[warp][u][l][fr_][fc][0], P[tix(r, c + 1)] = acc2[warp][u][l][fr_][fc][1];
                        Lg[(size_t)(I * CT + r) * np + k0 + c] = acc2[warp][u][l][fr_][fc][0];
                        Lg[(size_t)(I * CT + r) * np + k0 + c + 1] = acc2[warp][u][l][fr_][fc][1];
                    }
                }
            }
    }
    for (int K = nt - 1; K >= 0; K--) {
        const int k0 = K * CT;
        for (int warp = 0; warp < NW; warp++) for (int lane = 0; lane < 32; lane++) {
            double s = 0;
            for (int r = k0 + CT + warp; r < np; r += NW) s += Lg[(size_t)r * np + k0 + lane] * xs[r];
            red[warp * 32 + lane] = s;
        }
        double tk[32];
        for (int lane = 0; lane < 32; lane++) {
            tk[lane] = y[k0 + lane];
            for (int w = 0; w < NW; w++) tk[lane] -= red[w * 32 + lane];
        }
        for (int lane = 0; lane < 32; lane++) {
            double xc[2] = {0, 0};
            for (int j = 0; j < CT; j++) xc[j & 1] += Mg[(size_t)(k0 + j) * CT + lane] * tk[j];
            xs[k0 + lane] = xc[0] + xc[1];
        }
    }
    x.assign(n, 0);
    for (int i = 0; i < n; i++) x[i] = xs[i];
    return bad;
}
int main() {
    for (int n : {256, 128, 252, 30, 4, 200}) {
        std::vector<double> G, b, x, xr;
        make_problem(G, b, n);
        ref_solve(xr, G, b, n, 1e-3);
        int info = emu(x, G, b, n, 1e-3);
        double e = 0, m = 0;
        for (int i = 0; i < n; i++) e = fmax(e, fabs(x[i] - xr[i])), m = fmax(m, fabs(xr[i]));
        printf("n=%3d info %d rel err %.3e %s\n", n, info, e / m, info == 0 && e / m < 1e-9 ? "ok" : "FAIL");
    }
}
