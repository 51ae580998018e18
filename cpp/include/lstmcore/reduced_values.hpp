// The values of reduced-precision inference (reduced_precision.hpp multiplies them): W
// held in int8 (a scale per row) or bfloat16, packed once (ReducedMatrix), and float32
// activations converted row by row just before a product (ReducedRows).
//
// int8: W ~ q_w * scale_w[j] with q_w in [-127, 127]; each row of A is quantized
// dynamically, q_a = round(a * 127 / max|a|) with scale_a = max|a| / 127, so the product
// is an integer sum, exact in int32, dequantized once per output: float(sum) *
// (scale_a * scale_w[j]). Dynamic per-row activation scales because an LSTM's h_t lies in
// (-1, 1) but x does not, and a fixed scale would need calibration data the user may not
// have; the cost is one pass over each row per step, small against the product.
// bfloat16: W and A rounded to bfloat16 (nearest even), products summed in float32.
#pragma once

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "lstmcore/eigen_types.hpp"
#include "lstmcore/packed_product.hpp"  // PackedBuffer

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
// The packed weights and converted rows are padded for AMX's tiles (reduced_amx.hpp):
// the depth groups of a panel to a multiple of 16 (a tile of 16 rows of 64 bytes), the
// panels to an even count and the rows to a multiple of 32 (two tiles each way).
constexpr Index kTileGroups = 16;
constexpr Index kTileRows = 16;

inline Index rounded_up(Index value, Index multiple) { return (value + multiple - 1) / multiple * multiple; }

// Depth values one 32-bit lane takes per instruction: four int8, two bfloat16.
inline Index depth_group(Precision p) { return p == Precision::int8 ? 4 : 2; }

// float32 -> bfloat16 bits, rounded to nearest even (NaN stays NaN).
inline std::uint16_t to_bfloat16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

// The float value of the bfloat16 at index i of bytes (read through memcpy: the bytes
// are uint8_t objects, and reading them as uint16_t let GCC -O3 reorder the loads).
inline float bfloat16_at(const std::uint8_t* bytes, Index i);

inline float from_bfloat16(std::uint16_t half) {
  const std::uint32_t bits = std::uint32_t{half} << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

inline float bfloat16_at(const std::uint8_t* bytes, Index i) {
  std::uint16_t half;
  std::memcpy(&half, bytes + 2 * i, 2);
  return from_bfloat16(half);
}

// W (rows, depth) packed for the kernels: block (panel p, group g) at (p * stride + g) *
// 64 bytes holds lane l's values W[16p + l][g*G .. g*G + G - 1], G = depth_group; zero
// padded past the rows and the depth (stride: the groups rounded up to kTileGroups).
// int8 keeps scale_w and sum_k q_w per row.
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
  // Tiles of kTileGroups groups along the depth, zero past the last group.
  Index depth_tiles() const { return stride_ / kTileGroups; }
  Index panels() const { return (rows_ + kReducedLanes - 1) / kReducedLanes; }
  // Panel p's blocks; panels() rounded up to even are allocated, the last zero if added.
  const std::uint8_t* panel(Index p) const { return packed_.data() + p * stride_ * kReducedBlock; }
  const float* scales() const { return scales_.data(); }
  const std::int32_t* sums() const { return sums_.data(); }
  std::size_t bytes() const { return packed_.size(); }

 private:
  void allocate() {
    groups_ = (depth_ + depth_group(precision_) - 1) / depth_group(precision_);
    stride_ = rounded_up(std::max<Index>(groups_, 1), kTileGroups);
    packed_.assign(static_cast<std::size_t>(rounded_up(panels(), 2) * stride_ * kReducedBlock), 0);
  }
  std::uint8_t* at(Index row, Index k) {
    const Index G = depth_group(precision_), width = 4 / G;  // bytes per value
    const Index p = row / kReducedLanes, lane = row % kReducedLanes, g = k / G, e = k % G;
    return packed_.data() + (p * stride_ + g) * kReducedBlock + lane * 4 + e * width;
  }

  Precision precision_;
  Index rows_, depth_, groups_ = 0, stride_ = 0;
  PackedBuffer<std::uint8_t> packed_;
  std::vector<float> scales_;
  std::vector<std::int32_t> sums_;
};

// Rows of float32 activations converted for a product with a ReducedMatrix of `depth`:
// int8 rows hold q_a + 128 (padding 128, that is q = 0) with their scale; bfloat16 rows
// the rounded values (padding 0, never a NaN that a zero weight would spread). Rows are
// row_bytes() apart, a multiple of 64, and allocated to a multiple of 32 (AMX's tiles).
class ReducedRows {
 public:
  ReducedRows(Precision precision, Index capacity, Index depth)
      : precision_(precision),
        depth_(depth),
        row_bytes_(rounded_up(std::max<Index>(depth, 1), depth_group(precision) * kTileGroups) /
                   depth_group(precision) * 4),
        capacity_(rounded_up(std::max<Index>(capacity, 1), 2 * kTileRows)),
        data_(static_cast<std::size_t>(capacity_ * row_bytes_), 0),
        scales_(static_cast<std::size_t>(capacity_), 0.0f) {
    for (Index r = 0; r < capacity_ && precision == Precision::int8; ++r) {
      std::fill_n(row(r) + depth, row_bytes_ - depth, std::uint8_t{128});
    }
  }

  void convert(Index r, const float* a) {
    if (precision_ == Precision::bfloat16) {
      std::uint8_t* out = row(r);
      for (Index k = 0; k < depth_; ++k) {
        const std::uint16_t bits = to_bfloat16(a[k]);
        std::memcpy(out + 2 * k, &bits, 2);
      }
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
#elif defined(__AVX2__)
    __m256 lanes = _mm256_setzero_ps();
    __m256 beyond = _mm256_setzero_ps();  // lanes that saw NaN or inf
    const __m256 sign = _mm256_set1_ps(-0.0f), limit = _mm256_set1_ps(std::numeric_limits<float>::max());
    for (; k0 + 8 <= depth_; k0 += 8) {
      const __m256 magnitude = _mm256_andnot_ps(sign, _mm256_loadu_ps(a + k0));
      beyond = _mm256_or_ps(beyond, _mm256_cmp_ps(magnitude, limit, _CMP_NLE_UQ));
      lanes = _mm256_max_ps(lanes, magnitude);
    }
    alignas(32) float each[8];
    _mm256_store_ps(each, lanes);
    largest = *std::max_element(each, each + 8);
    finite = _mm256_movemask_ps(beyond) == 0;
#endif
    for (Index k = k0; k < depth_; ++k) {
      const float magnitude = std::fabs(a[k]);
      finite = finite && magnitude <= std::numeric_limits<float>::max();
      largest = std::max(largest, magnitude);
    }
    std::uint8_t* out = row(r);
    const float inverse = 127.0f / largest;
    if (!finite || !(inverse <= std::numeric_limits<float>::max())) {
      // A row of zeros, or of values so small (below 127 / FLT_MAX, about 4e-37) that
      // 127 / max|a| overflows, is q = 0 with scale 0; one holding NaN or inf has no int8
      // form, and its scale NaN makes every product with it NaN, as float32's would be.
      std::fill_n(out, depth_, std::uint8_t{128});
      scales_[r] = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      return;
    }
    Index k = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    // As the loop below, 16 values at a time (8 on AVX2): cvtps rounds to nearest even, as
    // nearbyint does in the default rounding mode.
    const __m512 scale = _mm512_set1_ps(inverse);
    for (; k + 16 <= depth_; k += 16) {
      __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k), scale));
      q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k),
                       _mm512_cvtepi32_epi8(_mm512_add_epi32(q, _mm512_set1_epi32(128))));
    }
#elif defined(__AVX2__)
    const __m256 scale = _mm256_set1_ps(inverse);
    for (; k + 8 <= depth_; k += 8) {
      __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(a + k), scale));
      q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
      q = _mm256_add_epi32(q, _mm256_set1_epi32(128));  // within [1, 255]: the packs keep it
      const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + k), _mm_packus_epi16(words, words));
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
  Index row_bytes() const { return row_bytes_; }

 private:
  Precision precision_;
  Index depth_, row_bytes_, capacity_;
  PackedBuffer<std::uint8_t> data_;
  std::vector<float> scales_;
};

// Where a product's output rows go: row r at data + r * stride, columns [0, w.rows()).
struct ReducedOutput {
  float* data;
  Index stride;
};

}  // namespace lstmcore
