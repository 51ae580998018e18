// How the core's products see their operands: as stacks of contiguous rows.
#pragma once

#include "lstmcore/eigen_types.hpp"

namespace lstmcore {

// A matrix operand as a stack of contiguous rows: row i at data + i * stride; or, for the
// (T*B) rows of a (T, B, F) sequence in either layout (`group` = B rows per time step),
// row i = t * B + b at data + t * group_stride + b * stride. The packing routines of
// packed_product.hpp read operands row by row, in their own memory order.
template <typename Scalar>
struct RowView {
  const Scalar* data;
  Index stride;
  Index group = 0;  // 0: the rows are evenly spaced
  Index group_stride = 0;
  const Scalar* row(Index i) const {
    return group == 0 ? data + i * stride : data + (i / group) * group_stride + (i % group) * stride;
  }
};

}  // namespace lstmcore
