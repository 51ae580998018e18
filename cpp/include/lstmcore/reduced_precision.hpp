// Reduced-precision inference products: C (rows, n) (+)= A (rows, depth) W^T with W held
// in int8 (a scale per row) or bfloat16, and A, float32 activations, converted row by row
// just before the product.
//
// int8: W ~ q_w * scale_w[j] with q_w in [-127, 127]; each row of A is quantized
// dynamically, q_a = round(a * 127 / max|a|) with scale_a = max|a| / 127, so the product
// is an integer sum, exact in int32, dequantized once per output: float(sum) *
// (scale_a * scale_w[j]). Dynamic per-row activation scales because an LSTM's h_t lies in
// (-1, 1) but x does not, and a fixed scale would need calibration data the user may not
// have; the cost is one pass over each row per step, small against the product.
// bfloat16: W and A rounded to bfloat16 (nearest even), products summed in float32.
//
// Kernels: AVX-512 VNNI (vpdpbusd: u8 x s8 -> s32, so activations are stored as
// q_a + 128 and 128 * sum_k q_w[j][k] taken off) and AVX512_BF16 (vdpbf16ps) where the
// build targets them, portable loops otherwise. Both compute the same values: integer
// sums are exact, and each bfloat16 product is exact in float32, so adding the pairs in
// vdpbf16ps's order (odd element first) gives its roundings. (vdpbf16ps also flushes
// subnormals, which the portable loop keeps.)
#pragma once

#if defined(__AVX512F__) || defined(__AVX512VNNI__) || defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "lstmcore/eigen_types.hpp"
#include "lstmcore/packed_product.hpp"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define LSTMCORE_INT8_VNNI 1
#endif
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define LSTMCORE_BF16_AVX512 1
#endif

namespace lstmcore {

enum class Precision { int8, bfloat16 };

// Output rows of W per panel: one 512-bit register of int32 or float.
constexpr Index kReducedLanes = 16;
// Bytes of one (panel, depth group) block: 16 lanes of 4 bytes.
constexpr Index kReducedBlock = 64;

// Depth values one 32-bit lane takes per instruction: four int8, two bfloat16.
inline Index depth_group(Precision p) { return p == Precision::int8 ? 4 : 2; }

// Which kernel a precision runs on in this build.
inline const char* reduced_kernel(Precision p) {
#if defined(LSTMCORE_INT8_VNNI)
  if (p == Precision::int8) return "avx512_vnni";
#endif
#if defined(LSTMCORE_BF16_AVX512)
  if (p == Precision::bfloat16) return "avx512_bf16";
#endif
  return "portable";
}

// float32 -> bfloat16 bits, rounded to nearest even (NaN stays NaN).
inline std::uint16_t to_bfloat16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

inline float from_bfloat16(std::uint16_t half) {
  const std::uint32_t bits = std::uint32_t{half} << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// W (rows, depth) packed for the kernels: block (panel p, group g) at (p * groups + g) *
// 64 bytes holds lane l's values W[16p + l][g*G .. g*G + G - 1], G = depth_group; zero
// padded past the rows and the depth. int8 keeps scale_w and sum_k q_w per row.
class ReducedMatrix {
 public:
  // int8: q (rows, depth) row-major, scales (rows,).
  ReducedMatrix(const std::int8_t* q, const float* scales, Index rows, Index depth)
      : precision_(Precision::int8), rows_(rows), depth_(depth), scales_(scales, scales + rows), sums_(rows, 0) {
    allocate();
    for (Index j = 0; j < rows; ++j) {
      std::int32_t sum = 0;
      for (Index k = 0; k < depth; ++k) {
        *at(j, k) = static_cast<std::uint8_t>(q[j * depth + k]);
        sum += q[j * depth + k];
      }
      sums_[j] = sum;
    }
  }
  // bfloat16: bits (rows, depth) row-major.
  ReducedMatrix(const std::uint16_t* bits, Index rows, Index depth)
      : precision_(Precision::bfloat16), rows_(rows), depth_(depth) {
    allocate();
    for (Index j = 0; j < rows; ++j) {
      for (Index k = 0; k < depth; ++k) std::memcpy(at(j, k), bits + j * depth + k, 2);
    }
  }

  Precision precision() const { return precision_; }
  Index rows() const { return rows_; }
  Index depth() const { return depth_; }
  Index groups() const { return groups_; }
  Index panels() const { return (rows_ + kReducedLanes - 1) / kReducedLanes; }
  const std::uint8_t* panel(Index p) const { return packed_.data() + p * groups_ * kReducedBlock; }
  const float* scales() const { return scales_.data(); }
  const std::int32_t* sums() const { return sums_.data(); }
  std::size_t bytes() const { return packed_.size(); }

 private:
  void allocate() {
    groups_ = (depth_ + depth_group(precision_) - 1) / depth_group(precision_);
    packed_.assign(static_cast<std::size_t>(panels() * groups_ * kReducedBlock), 0);
  }
  std::uint8_t* at(Index row, Index k) {
    const Index G = depth_group(precision_), width = 4 / G;  // bytes per value
    const Index p = row / kReducedLanes, lane = row % kReducedLanes, g = k / G, e = k % G;
    return packed_.data() + (p * groups_ + g) * kReducedBlock + lane * 4 + e * width;
  }

  Precision precision_;
  Index rows_, depth_, groups_ = 0;
  PackedBuffer<std::uint8_t> packed_;
  std::vector<float> scales_;
  std::vector<std::int32_t> sums_;
};

// Rows of float32 activations converted for a product with a ReducedMatrix of `depth`:
// int8 rows hold q_a + 128 (padding 128, that is q = 0) with their scale; bfloat16 rows
// the rounded values (padding 0). Row r starts 4 * groups bytes after row r - 1.
class ReducedRows {
 public:
  ReducedRows(Precision precision, Index capacity, Index depth)
      : precision_(precision),
        depth_(depth),
        row_bytes_(((depth + depth_group(precision) - 1) / depth_group(precision)) * 4),
        data_(static_cast<std::size_t>(std::max<Index>(capacity, 1) * row_bytes_), 0),
        scales_(static_cast<std::size_t>(std::max<Index>(capacity, 1)), 0.0f) {
    for (Index r = 0; r < capacity && precision == Precision::int8; ++r) {
      std::fill_n(row(r) + depth, row_bytes_ - depth, std::uint8_t{128});
    }
  }

  void convert(Index r, const float* a) {
    if (precision_ == Precision::bfloat16) {
      auto* out = reinterpret_cast<std::uint16_t*>(row(r));
      for (Index k = 0; k < depth_; ++k) out[k] = to_bfloat16(a[k]);
      return;
    }
    float largest = 0.0f;
    bool finite = true;
    Index k0 = 0;
#if defined(__AVX512F__)
    __m512 lanes = _mm512_setzero_ps();
    __mmask16 beyond = 0;  // NaN or infinite
    for (; k0 + 16 <= depth_; k0 += 16) {
      const __m512 magnitude = _mm512_abs_ps(_mm512_loadu_ps(a + k0));
      beyond |= _mm512_cmp_ps_mask(magnitude, _mm512_set1_ps(std::numeric_limits<float>::max()), _CMP_NLE_UQ);
      lanes = _mm512_max_ps(lanes, magnitude);
    }
    largest = _mm512_reduce_max_ps(lanes);
    finite = beyond == 0;
#endif
    for (Index k = k0; k < depth_; ++k) {
      const float magnitude = std::fabs(a[k]);
      finite = finite && magnitude <= std::numeric_limits<float>::max();
      largest = std::max(largest, magnitude);
    }
    std::uint8_t* out = row(r);
    if (!finite || largest == 0.0f) {
      // A row of zeros is q = 0 with scale 0; one holding NaN or inf has no int8 form,
      // and its scale NaN makes every product with it NaN, as float32's would be.
      std::fill_n(out, depth_, std::uint8_t{128});
      scales_[r] = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      return;
    }
    const float inverse = 127.0f / largest;
    Index k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    // As the loop below, 16 values at a time: cvtps rounds to nearest even, as nearbyint
    // does in the default rounding mode.
    const __m512 scale = _mm512_set1_ps(inverse);
    for (; k + 16 <= depth_; k += 16) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k), scale));
      q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k),
                       _mm512_cvtepi32_epi8(_mm512_add_epi32(q, _mm512_set1_epi32(128))));
    }
#endif
    for (; k < depth_; ++k) {
      float q = std::nearbyint(a[k] * inverse);
      q = q > -127.0f ? (q < 127.0f ? q : 127.0f) : -127.0f;
      out[k] = static_cast<std::uint8_t>(static_cast<int>(q) + 128);
    }
    scales_[r] = largest / 127.0f;
  }

  const std::uint8_t* row(Index r) const { return data_.data() + r * row_bytes_; }
  std::uint8_t* row(Index r) { return data_.data() + r * row_bytes_; }
  float scale(Index r) const { return scales_[r]; }

 private:
  Precision precision_;
  Index depth_, row_bytes_;
  PackedBuffer<std::uint8_t> data_;
  std::vector<float> scales_;
};

// Where a product's output rows go: row r at data + r * stride, columns [0, w.rows()).
struct ReducedOutput {
  float* data;
  Index stride;
};

namespace detail {

// The value, as a register the compiler cannot see into: the scaling product before it
// is not fused with the addition after it (-ffp-contract=fast would make them one FMA,
// rounded once, where the NumPy model rounds twice, and only in some of the kernel's
// instantiations).
inline float unfused(float value) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(value));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(value));
#endif
  return value;
}

// One row of A against one panel, portable: the same sums as the SIMD kernels.
inline void reduced_panel_portable(const ReducedMatrix& w, Index p, const ReducedRows& a, Index r, float* out,
                                   Index cols, bool accumulate) {
  const std::uint8_t* block = w.panel(p);
  const std::uint8_t* ar = a.row(r);
  float result[kReducedLanes];
  if (w.precision() == Precision::int8) {
    std::int32_t sum[kReducedLanes] = {};
    for (Index g = 0; g < w.groups(); ++g, block += kReducedBlock) {
      for (Index e = 0; e < 4; ++e) {
        const std::int32_t q = std::int32_t{ar[g * 4 + e]} - 128;
        for (Index lane = 0; lane < kReducedLanes; ++lane) {
          sum[lane] += q * static_cast<std::int8_t>(block[lane * 4 + e]);
        }
      }
    }
    const float scale_a = a.scale(r);
    for (Index lane = 0; lane < cols; ++lane) {
      const float scale = scale_a * w.scales()[p * kReducedLanes + lane];
      result[lane] = unfused(static_cast<float>(sum[lane]) * scale);
    }
  } else {
    float sum[kReducedLanes] = {};
    const auto* a16 = reinterpret_cast<const std::uint16_t*>(ar);
    for (Index g = 0; g < w.groups(); ++g, block += kReducedBlock) {
      const auto* w16 = reinterpret_cast<const std::uint16_t*>(block);
      const float odd = from_bfloat16(a16[2 * g + 1]), even = from_bfloat16(a16[2 * g]);
      for (Index lane = 0; lane < kReducedLanes; ++lane) {
        // Each product of two bfloat16 is exact in float32: one rounding per addition,
        // odd element first, as vdpbf16ps.
        const float odd_product = odd * from_bfloat16(w16[lane * 2 + 1]);
        sum[lane] = sum[lane] + odd_product;
        const float even_product = even * from_bfloat16(w16[lane * 2]);
        sum[lane] = sum[lane] + even_product;
      }
    }
    std::copy_n(sum, cols, result);
  }
  for (Index lane = 0; lane < cols; ++lane) out[lane] = accumulate ? out[lane] + result[lane] : result[lane];
}

#if defined(LSTMCORE_INT8_VNNI) || defined(LSTMCORE_BF16_AVX512)
// acc + the dot products of a's and b's lanes, as one instruction in place: GCC 12
// copied every accumulator to a new register around each _mm512_dpbusd_epi32, twice the
// instructions of the dot products themselves.
#if defined(LSTMCORE_INT8_VNNI)
EIGEN_ALWAYS_INLINE __m512i dot(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
#endif
#if defined(LSTMCORE_BF16_AVX512)
EIGEN_ALWAYS_INLINE __m512 dot(__m512 acc, __m512i a, __m512i b) {
  __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
#endif

// R rows of A by P panels from panel p0: R * P accumulators, each block of W loaded once
// for the R rows.
template <Precision kPrecision, int R, int P>
inline void reduced_tile(const ReducedMatrix& w, Index p0, const ReducedRows& a, Index r0, ReducedOutput out,
                         bool accumulate) {
  using Acc = std::conditional_t<kPrecision == Precision::int8, __m512i, __m512>;
  Acc acc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) {
      if constexpr (kPrecision == Precision::int8) {
        acc[r][p] = _mm512_setzero_si512();
      } else {
        acc[r][p] = _mm512_setzero_ps();
      }
    }
  }
  const std::uint8_t* blocks[P];
  for (int p = 0; p < P; ++p) blocks[p] = w.panel(p0 + p);
  const std::uint8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = a.row(r0 + r);
  for (Index g = 0; g < w.groups(); ++g) {
    __m512i value[R];
    for (int r = 0; r < R; ++r) {
      std::int32_t word;
      std::memcpy(&word, rows[r] + g * 4, 4);
      value[r] = _mm512_set1_epi32(word);
    }
    for (int p = 0; p < P; ++p) {
      const __m512i block = _mm512_loadu_si512(blocks[p] + g * kReducedBlock);
      for (int r = 0; r < R; ++r) acc[r][p] = dot(acc[r][p], value[r], block);
    }
  }
  for (int p = 0; p < P; ++p) {
    const Index first = (p0 + p) * kReducedLanes;
    const Index cols = std::min(kReducedLanes, w.rows() - first);
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    for (int r = 0; r < R; ++r) {
      __m512 result;
      if constexpr (kPrecision == Precision::int8) {
        const __m512i offset = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, w.sums() + first), 7);
        const __m512 scale =
            _mm512_mul_ps(_mm512_set1_ps(a.scale(r0 + r)), _mm512_maskz_loadu_ps(mask, w.scales() + first));
        result = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][p], offset)), scale);
        __asm__("" : "+v"(result));  // as unfused(): no FMA with the addition below
      } else {
        result = acc[r][p];
      }
      float* target = out.data + (r0 + r) * out.stride + first;
      if (accumulate) result = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, target), result);
      _mm512_mask_storeu_ps(target, mask, result);
    }
  }
}

// Panels [p, p + P) against rows [r0, r0 + R).
template <Precision kPrecision, int P>
inline void reduced_panels(const ReducedMatrix& w, Index p, const ReducedRows& a, Index r0, Index rows,
                           ReducedOutput out, bool accumulate) {
  switch (rows) {
    case 4:
      return reduced_tile<kPrecision, 4, P>(w, p, a, r0, out, accumulate);
    case 3:
      return reduced_tile<kPrecision, 3, P>(w, p, a, r0, out, accumulate);
    case 2:
      return reduced_tile<kPrecision, 2, P>(w, p, a, r0, out, accumulate);
    default:
      return reduced_tile<kPrecision, 1, P>(w, p, a, r0, out, accumulate);
  }
}

// Four panels at a time (with one row, a batch-1 step, four independent accumulators per
// block of A and four blocks of W in flight), each group of panels against every tile of
// rows in turn, so that its blocks of W are read from L1 rather than L2 after the first
// tile.
template <Precision kPrecision>
inline void reduced_simd(const ReducedMatrix& w, const ReducedRows& a, Index rows, ReducedOutput out,
                         bool accumulate) {
  const Index panels = w.panels();
  for (Index p = 0; p < panels; p += 4) {
    for (Index r = 0; r < rows; r += 4) {
      const Index height = std::min<Index>(4, rows - r);
      switch (std::min<Index>(4, panels - p)) {
        case 4:
          reduced_panels<kPrecision, 4>(w, p, a, r, height, out, accumulate);
          break;
        case 3:
          reduced_panels<kPrecision, 3>(w, p, a, r, height, out, accumulate);
          break;
        case 2:
          reduced_panels<kPrecision, 2>(w, p, a, r, height, out, accumulate);
          break;
        default:
          reduced_panels<kPrecision, 1>(w, p, a, r, height, out, accumulate);
          break;
      }
    }
  }
}
#endif

}  // namespace detail

// out (rows, w.rows()) (+)= A W^T for the first `rows` rows of `a`.
inline void reduced_product(const ReducedMatrix& w, const ReducedRows& a, Index rows, ReducedOutput out,
                            bool accumulate) {
#if defined(LSTMCORE_INT8_VNNI)
  if (w.precision() == Precision::int8) return detail::reduced_simd<Precision::int8>(w, a, rows, out, accumulate);
#endif
#if defined(LSTMCORE_BF16_AVX512)
  if (w.precision() == Precision::bfloat16) {
    return detail::reduced_simd<Precision::bfloat16>(w, a, rows, out, accumulate);
  }
#endif
  for (Index r = 0; r < rows; ++r) {
    for (Index p = 0; p < w.panels(); ++p) {
      const Index first = p * kReducedLanes;
      detail::reduced_panel_portable(w, p, a, r, out.data + r * out.stride + first,
                                     std::min(kReducedLanes, w.rows() - first), accumulate);
    }
  }
}

}  // namespace lstmcore
