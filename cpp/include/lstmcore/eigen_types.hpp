// Row-major Eigen views over the raw buffers the core works on. Every buffer is
// (rows, cols) row-major with an explicit row stride, so a slice of a wider array
// (one direction of a bidirectional output, one gate block) is a view, not a copy.
#pragma once

#include <Eigen/Core>

namespace lstmcore {

using Index = Eigen::Index;

template <typename Scalar>
using RowMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename Scalar>
using MatrixView = Eigen::Map<RowMatrix<Scalar>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename Scalar>
using ConstMatrixView = Eigen::Map<const RowMatrix<Scalar>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename Scalar>
using ArrayView = Eigen::Map<Eigen::Array<Scalar, Eigen::Dynamic, 1>>;

template <typename Scalar>
using ConstArrayView = Eigen::Map<const Eigen::Array<Scalar, Eigen::Dynamic, 1>>;

// A (rows, cols) view of `data` whose rows are `stride` elements apart.
template <typename Scalar>
MatrixView<Scalar> view(Scalar* data, Index rows, Index cols, Index stride) {
  return MatrixView<Scalar>(data, rows, cols, Eigen::OuterStride<>(stride));
}

template <typename Scalar>
ConstMatrixView<Scalar> view(const Scalar* data, Index rows, Index cols, Index stride) {
  return ConstMatrixView<Scalar>(data, rows, cols, Eigen::OuterStride<>(stride));
}

}  // namespace lstmcore
