// How the core's products see their operands: as stacks of contiguous rows.
#pragma once

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

// A matrix operand as a stack of contiguous rows: row i at data + i * stride; or, for
// (T*b) rows of a (T, B, F) sequence in either layout (`group` = b rows per time step,
// all B of them or one thread's share), row i = t * b + j at
// data + t * group_stride + j * stride. The packing routines of packed_product.hpp read
// operands row by row, in their own memory order; the products write their results
// through the same mapping.
template <typename Pointer>
struct BasicRowView {
  Pointer data;
  Index stride;
  Index group = 0;  // 0: the rows are evenly spaced
  Index group_stride = 0;
  Pointer row(Index i) const {
    return group == 0 ? data + i * stride : data + (i / group) * group_stride + (i % group) * stride;
  }
};

// Rows a product reads ...
template <typename Scalar>
using RowView = BasicRowView<const Scalar*>;
// ... and rows it writes.
template <typename Scalar>
using OutputRows = BasicRowView<Scalar*>;

}  // namespace lstmcore
