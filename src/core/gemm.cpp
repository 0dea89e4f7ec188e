#include "core/gemm.h"

#include <omp.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "core/tensor.h"
#include "oneapi/dnnl/dnnl.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace harvit {

void gemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  dnnl_status_t st = dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (st != dnnl_success)
    fail("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(st)) + ") for M=" +
         std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
}

namespace {

struct MatmulCache {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  using Key = std::tuple<std::vector<int64_t>, float, bool>;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory::desc a, b, c;
  };
  std::map<Key, Entry> prims;
};

MatmulCache& matmul_cache() {
  static MatmulCache cache;
  return cache;
}

}  // namespace

void batched_matmul(int64_t B1, int64_t B2, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    MatStrides sa, const float* B, MatStrides sb, float* C, MatStrides sc, bool accumulate) {
  if (B1 * B2 * M * N == 0) return;
  using dnnl::memory;
  MatmulCache& mc = matmul_cache();
  MatmulCache::Key key{{B1, B2, M, N, K, sa.b1, sa.b2, sa.row, sa.col, sb.b1, sb.b2, sb.row, sb.col, sc.b1, sc.b2,
                        sc.row, sc.col},
                       alpha, accumulate};
  auto it = mc.prims.find(key);
  if (it == mc.prims.end()) {
    try {
      memory::desc a({B1, B2, M, K}, memory::data_type::f32, {sa.b1, sa.b2, sa.row, sa.col});
      memory::desc b({B1, B2, K, N}, memory::data_type::f32, {sb.b1, sb.b2, sb.row, sb.col});
      memory::desc c({B1, B2, M, N}, memory::data_type::f32, {sc.b1, sc.b2, sc.row, sc.col});
      dnnl::primitive_attr attr;
      if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
      if (accumulate) {
        dnnl::post_ops po;
        po.append_sum(1.0f);
        attr.set_post_ops(po);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, mc.eng);
      it = mc.prims.emplace(key, MatmulCache::Entry{dnnl::matmul(pd), a, b, c}).first;
    } catch (const dnnl::error& e) {
      fail(std::string("oneDNN batched matmul setup failed: ") + e.what());
    }
  }
  auto& e = it->second;
  dnnl::memory ma(e.a, mc.eng, const_cast<float*>(A)), mb(e.b, mc.eng, const_cast<float*>(B)), mcm(e.c, mc.eng, C);
  e.prim.execute(mc.strm, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mcm}});
  mc.strm.wait();
}

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace harvit
