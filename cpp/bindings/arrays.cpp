#include "arrays.hpp"

#include <sstream>

namespace lstmcore::bindings {

std::string shape_text(const std::vector<py::ssize_t>& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t k = 0; k < shape.size(); ++k) out << (k ? ", " : "") << shape[k];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

py::array array_argument(const py::object& a, const char* name) {
  if (!py::isinstance<py::array>(a)) {
    throw py::type_error(std::string("expected ") + name + " as a NumPy array, got " +
                         std::string(py::str(py::type::of(a).attr("__name__"))));
  }
  return py::reinterpret_borrow<py::array>(a);
}

void throw_mismatch(const py::array& a, const char* name, const py::dtype& expected,
                    const std::vector<py::ssize_t>& shape, bool ok_layout) {
  const std::vector<py::ssize_t> given(a.shape(), a.shape() + a.ndim());
  std::ostringstream msg;
  msg << "expected " << name << " as a C-contiguous " << std::string(py::str(expected)) << " array of shape "
      << shape_text(shape) << ", got " << std::string(py::str(a.dtype())) << " of shape " << shape_text(given)
      << (ok_layout ? "" : " (not C-contiguous)");
  throw py::value_error(msg.str());
}

std::vector<py::ssize_t> sequence_shape(const Dims& d, Index features) {
  if (d.batch_first) return {d.batch, d.steps, features};
  return {d.steps, d.batch, features};
}

Dims sequence_dims(const py::array& x, Index hidden, bool batch_first) {
  if (x.ndim() != 3)
    throw py::value_error(std::string("expected x of rank 3 ") + (batch_first ? "(B, T, I)" : "(T, B, I)") +
                          ", got rank " + std::to_string(x.ndim()));
  return {x.shape(batch_first ? 1 : 0), x.shape(batch_first ? 0 : 1), x.shape(2), hidden, batch_first};
}

Dims dims_of(const py::array& x, const py::array& weight_hh, Index gates, bool batch_first) {
  if (weight_hh.ndim() != 2) throw py::value_error("expected weight_hh of rank 2");
  const Dims d = sequence_dims(x, weight_hh.shape(1), batch_first);
  if (d.steps < 1 || d.batch < 1 || d.hidden < 1)
    throw py::value_error("sequence length, batch and hidden size must be at least 1");
  if (weight_hh.shape(0) != gates * d.hidden)
    throw py::value_error("expected weight_hh with " + std::to_string(gates) + " * hidden rows");
  return d;
}

Dims projected_dims_of(const py::array& x, const py::array& weight_hr, Index& proj, bool batch_first) {
  if (weight_hr.ndim() != 2) throw py::value_error("expected weight_hr of rank 2 (P, H)");
  const Dims d = sequence_dims(x, weight_hr.shape(1), batch_first);
  proj = weight_hr.shape(0);
  if (d.steps < 1 || d.batch < 1 || d.hidden < 1 || proj < 1)
    throw py::value_error("sequence length, batch, hidden and projection sizes must be at least 1");
  return d;
}

Index checked_offset(const py::array& y, Index offset, Index features) {
  if (y.ndim() != 3 || offset < 0 || offset + features > y.shape(2)) {
    std::ostringstream msg;
    msg << "expected y of rank 3 with y_offset + " << features << " <= its width, got shape "
        << shape_text(std::vector<py::ssize_t>(y.shape(), y.shape() + y.ndim())) << " and y_offset " << offset;
    throw py::value_error(msg.str());
  }
  return y.shape(2);
}

namespace {

const Index* checked_batch_sizes(const py::object& a, const Dims& d) {
  if (a.is_none()) return nullptr;
  const Index* sizes = checked_optional<Index>(a, "batch_sizes", {d.steps}, false);
  for (Index t = 0; t < d.steps; ++t) {
    if (sizes[t] < 0 || sizes[t] > d.batch || (t > 0 && sizes[t] > sizes[t - 1]))
      throw py::value_error("batch_sizes must be non-increasing counts in [0, batch]");
  }
  return sizes;
}

}  // namespace

SequenceShape shape_of(const Dims& d, bool reverse, const py::object& batch_sizes) {
  const Index* sizes = checked_batch_sizes(batch_sizes, d);
  return {d.steps, d.batch, d.input, d.hidden, reverse, sizes};
}

}  // namespace lstmcore::bindings

namespace lstmcore::bindings {

void check_tape_dims(const char* kind, Index steps, Index batch, Index hidden, const Dims& d) {
  if (steps == d.steps && batch == d.batch && hidden == d.hidden) return;
  std::ostringstream msg;
  msg << "expected a " << kind << " of (T, B, H) = " << shape_text({d.steps, d.batch, d.hidden})
      << " as the backward's x and weights give, got one of " << shape_text({steps, batch, hidden});
  throw py::value_error(msg.str());
}

}  // namespace lstmcore::bindings
