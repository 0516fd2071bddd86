/* Fully connected layer through cuBLAS.
 *
 * Row-major y (M,O) = x (M,K) W^T + b with W (O,K).  cuBLAS is
 * column-major: a row-major (R,C) matrix is the column-major (C,R) matrix,
 * so  y^T (O,M) = W (O,K) x^T (K,M)  with W seen as col-major (K,O) and
 * transposed:  sgemm(T, N, O, M, K, W ld K, x ld K, y ld O).
 * Backward:
 *   dx (M,K)  = dy W        ->  dx^T (K,M) = W^T (K,O) dy^T (O,M):  sgemm(N, N, K, M, O)
 *   dw (O,K) += dy^T x      ->  dw^T (K,O) = x^T (K,M) dy (M,O):    sgemm(N, T, K, O, M), beta 1
 *   db (O)   += column sums of dy.
 */
#include "backend/cuda/cuda_internal.cuh"

template <typename T>
__global__ void k_add_bias(int64_t n, int O, T *y, const float *b) {
    CU_FOR(i, n) cu_st(y, i, cu_ld(y, i) + b[i % O]);
}

static dcl_status cu_linear_fwd(dcl_backend *be, int M, int K, int O, float *y, const float *x,
                                const float *w, const float *b) {
    const char *op = "linear_fwd";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, K); CU_POS(op, O);
    CU_NEED(op, y); CU_NEED(op, x); CU_NEED(op, w);
    const float one = 1.f, zero = 0.f;
    CU_BLAS(op, cu_blas.cublasSgemm_v2(I->cublas, CUBLAS_OP_T, CUBLAS_OP_N, O, M, K, &one, w, K, x, K, &zero, y, O));
    if (b) {
        const int64_t n = (int64_t)M * O;
        k_add_bias<float><<<cu_grid(I, n), CU_THREADS, 0, I->stream>>>(n, O, y, b);
        CU_LAUNCHED(op, "k_add_bias");
    }
    return DCL_OK;
}

static dcl_status cu_linear_bwd(dcl_backend *be, int M, int K, int O, float *dx, float *dw, float *db,
                                const float *dy, const float *x, const float *w) {
    const char *op = "linear_bwd";
    CU_ENTER(be, op);
    CU_POS(op, M); CU_POS(op, K); CU_POS(op, O);
    CU_NEED(op, dy);
    const float one = 1.f, zero = 0.f;
    if (dw) {
        CU_NEED(op, x);
        CU_BLAS(op, cu_blas.cublasSgemm_v2(I->cublas, CUBLAS_OP_N, CUBLAS_OP_T, K, O, M, &one, x, K, dy, O, &one, dw, K));
    }
    if (db) DCL_TRY(cu_colsum_acc(I, op, M, O, db, dy));
    if (dx) {                       /* last: dx may alias x */
        CU_NEED(op, w);
        CU_BLAS(op, cu_blas.cublasSgemm_v2(I->cublas, CUBLAS_OP_N, CUBLAS_OP_N, K, M, O, &one, w, K, dy, O, &zero, dx, K));
    }
    return DCL_OK;
}

void cu_install_linear(dcl_backend *be) {
    be->linear_fwd = cu_linear_fwd;
    be->linear_bwd = cu_linear_bwd;
}
