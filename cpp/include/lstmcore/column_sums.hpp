// Column sums that a thread takes over the rows it handles, row by row while each row is
// still in cache, instead of over a whole tape after the loop (which reads it back from
// memory); the caller adds them to the gradients in thread order.
#pragma once

#include <initializer_list>
#include <vector>

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

template <typename Scalar>
class ColumnSums {
 public:
  // One sum of each width, starting at zero.
  explicit ColumnSums(std::initializer_list<Index> widths) {
    for (Index width : widths) sums_.emplace_back(width, Scalar(0));
  }

  // sum k += values (its width).
  void add(int k, const Scalar* values) {
    Scalar* sum = sums_[k].data();
    const Index width = static_cast<Index>(sums_[k].size());
    for (Index j = 0; j < width; ++j) sum[j] += values[j];
  }

  // sum k += a * b, element by element.
  void add_products(int k, const Scalar* a, const Scalar* b) {
    Scalar* sum = sums_[k].data();
    const Index width = static_cast<Index>(sums_[k].size());
    for (Index j = 0; j < width; ++j) sum[j] += a[j] * b[j];
  }

  // out (its width) += sum k.
  void add_to(int k, Scalar* out) const {
    const Scalar* sum = sums_[k].data();
    const Index width = static_cast<Index>(sums_[k].size());
    for (Index j = 0; j < width; ++j) out[j] += sum[j];
  }

 private:
  std::vector<std::vector<Scalar>> sums_;
};

}  // namespace lstmcore
