// A 64-bit fingerprint of a buffer's bytes, at memory speed: a forward pass stores the
// fingerprints of the parameters it read in its tape, and backward refuses the tape when
// they changed since (an optimizer step, a user's in-place write), since its gradients
// would then match neither the old nor the new weights. Not cryptographic: it guards
// against accidents, not adversaries.
//
// fingerprint = finish(sum_i mix(word_i ^ key_i), bytes): word_i the i-th 64-bit word
// (the tail zero-padded), key_i = (i + 1) * golden. mix is a bijection of 64-bit words and
// the xor with key_i another, so changing any ONE word (one float by one ulp) always
// changes its term and hence the sum: such a change is never missed. Several changed
// words collide with probability about 2^-64; position-dependent keys make a swap of two
// words a change like any other. A sum of independent terms lets the compiler vectorise
// the loop (integer addition is associative, no fast-math needed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lstmcore {

namespace fingerprint_detail {

inline constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio, odd

// Each step is invertible (xor-shift, multiplication by an odd constant), so mix is too.
inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ULL;
  x ^= x >> 32;
  return x;
}

}  // namespace fingerprint_detail

inline std::uint64_t fingerprint(const unsigned char* bytes, std::size_t size) {
  using fingerprint_detail::kGolden;
  using fingerprint_detail::mix;
  const std::size_t words = size / 8;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t word;
    std::memcpy(&word, bytes + 8 * i, 8);  // any alignment; compiles to one load
    sum += mix(word ^ ((i + 1) * kGolden));
  }
  if (const std::size_t tail = size % 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, bytes + 8 * words, tail);
    sum += mix(word ^ ((words + 1) * kGolden));
  }
  // The length enters last, so a buffer and the same buffer with zero bytes appended differ.
  return mix(sum ^ mix(static_cast<std::uint64_t>(size) + kGolden));
}

}  // namespace lstmcore
