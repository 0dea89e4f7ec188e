// Matrix products: large ones through oneDNN, small ones (attention heads) in harvit's own
// register-tiled kernels. Row-major throughout; 'T' transposes an operand.
#pragma once
#include <cstdint>
#include <vector>

namespace harvit {

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when trans* == 'T'.
// lda/ldb/ldc are row strides of the stored matrices. Runs on the OpenMP pool (oneDNN's OMP
// runtime shares libgomp with harvit); called inside a parallel region it runs single-threaded.
void gemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Small products on the calling thread (no oneDNN call, no threads): for many independent
// products of a few dozen rows, such as one attention head of one window, where a library call
// per product costs more than the arithmetic.
// C (m x n, row stride ldc) = alpha * A B (+ C when accumulate), where element (i, p) of A is
// A[i * ars + p * acs] (any layout: a transpose is a swap of the two strides) and B (k x n) has
// row stride ldb and unit column stride. Runs the AVX-512 kernel (12 x 32 register tiles, core/
// fp32_kernels.h) where the CPU has AVX-512, else an AVX2/FMA kernel (6 x 16 tiles) where the
// build has it, else small_gemm_reference; the two kernels give the same bits.
void small_gemm(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t ars, int64_t acs,
                const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);
// The same products by plain loops, any strides (element (p, j) of B at B[p * brs + j * bcs]):
// the portable path, and the tests' oracle for the kernels.
void small_gemm_reference(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t ars,
                          int64_t acs, const float* B, int64_t brs, int64_t bcs, float* C, int64_t ldc,
                          bool accumulate);

// C (m x n, row stride ldc) = alpha * A B^T (+ C when accumulate) for A (m x k) and B (n x k),
// both with unit stride along k (rows lda, ldb apart). B is transposed into per-thread scratch
// (8 x 8 register blocks), then multiplied as above.
void small_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool accumulate);

// The small-GEMM kernel this CPU runs: "harvit AVX512 12x32", "harvit AVX2 6x16" or "portable loops".
const char* small_gemm_kernel();

// A constant right-hand operand B (k x n) packed once into column panels for the fastest fp32
// kernel the CPU has (core/cpu.h: AVX-512 12x32 tiles over 32-column panels, else the AVX2 6x16
// kernel over 16-column panels), for products on the calling thread that neither allocate nor
// touch a thread pool: the streaming recogniser's linear layers (serial mode, core/threading.h),
// where oneDNN's sgemm would allocate its packing buffers on every call. A panel stays in L1
// while every row tile of A streams past it.
class PackedB {
 public:
  PackedB() = default;
  // B = W^T for W (n x k), rows ldw apart: a linear layer's (OUT, IN) weights.
  void pack_transposed(const float* W, int64_t n, int64_t k, int64_t ldw);
  bool empty() const { return p_.empty(); }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  // C (m x n, rows ldc apart) = A (m x k, rows lda apart) B (+ bias, n floats, on every row, when
  // given) (+ C when accumulate). On the calling thread in serial mode; otherwise the panels are
  // shared among the pool's threads.
  void multiply(int64_t m, const float* A, int64_t lda, float* C, int64_t ldc, bool accumulate,
                const float* bias = nullptr) const;
  // The kernel pack_transposed chooses on this CPU: "AVX512 12x32" or "AVX2 6x16".
  static const char* kernel_name();

 private:
  int64_t n_ = 0, k_ = 0, width_ = 0;
  std::vector<float> p_;  // (ceil(n / width), k, width)
};

// Threads used by harvit's OpenMP loops and oneDNN (one pool). 0 = leave as is.
void set_num_threads(int n);
int num_threads();

}  // namespace harvit
