// Matrix products through oneDNN. Row-major throughout; 'T' transposes an operand.
#pragma once
#include <cstdint>

namespace harvit {

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when trans* == 'T'.
// lda/ldb/ldc are row strides of the stored matrices. Runs on the OpenMP pool (oneDNN's OMP
// runtime shares libgomp with harvit); called inside a parallel region it runs single-threaded.
void gemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Element strides of one operand of a batched matmul: two batch dimensions, then rows, columns.
// Any layout works, so views into interleaved tensors (heads inside a token row) and
// transposes need no copies.
struct MatStrides {
  int64_t b1, b2, row, col;
};

// For every (i, j) < (B1, B2): C_ij (M x N) = alpha * A_ij (M x K) * B_ij (K x N) (+ C_ij when
// accumulate). One oneDNN matmul primitive per distinct shape/layout, created once and cached.
void batched_matmul(int64_t B1, int64_t B2, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    MatStrides sa, const float* B, MatStrides sb, float* C, MatStrides sc, bool accumulate);

// Threads used by harvit's OpenMP loops and oneDNN (one pool). 0 = leave as is.
void set_num_threads(int n);
int num_threads();

}  // namespace harvit
