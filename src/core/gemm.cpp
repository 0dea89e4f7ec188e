#include "core/gemm.h"

#include <omp.h>

#include <string>

#include "core/tensor.h"
#include "oneapi/dnnl/dnnl.h"

namespace harvit {

void gemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  dnnl_status_t st = dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (st != dnnl_success)
    fail("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(st)) + ") for M=" +
         std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
}

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace harvit
