// Test-only hooks, registered in the submodule _core.diagnostics: the core's own
// activations, how a pass splits over threads, the load sensor's input, and the
// instruction sets the build targets.
#include <chrono>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "arrays.hpp"
#include "lstmcore/activations.hpp"
#include "lstmcore/input_gradient.hpp"
#include "lstmcore/interleaved_projection.hpp"
#include "lstmcore/load_sensor.hpp"
#include "lstmcore/packed_product.hpp"
#include "lstmcore/reduced_amx.hpp"
#include "lstmcore/reduced_sequence.hpp"
#include "lstmcore/threading.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

// Applies the core's vectorized tanh or sigmoid to a 1-D array (for the error-bound tests).
template <bool kTanh>
py::array activation(const py::array& x) {
  if (x.ndim() != 1) throw py::value_error("expected a 1-D array");
  py::array out;
  dispatch(x, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto* in = checked<Scalar>(x, "x", {x.shape(0)}, false);
    out = py::array_t<Scalar>(x.shape(0));
    auto* result = static_cast<Scalar*>(out.mutable_data());
    py::gil_scoped_release release;
    if (kTanh)
      apply_gate_tanh(in, result, x.shape(0));
    else
      apply_gate_sigmoid(in, result, x.shape(0));
  });
  return out;
}

// The shape of a pass as pass_plan and dx_after_the_loop describe it: one step, or as many
// as batch_sizes has.
SequenceShape planned_shape(Index batch, Index input, Index hidden, const py::object& batch_sizes,
                            Index steps = 1) {
  if (!batch_sizes.is_none()) steps = static_cast<Index>(py::len(batch_sizes));
  return shape_of({steps, batch, input, hidden, false}, false, batch_sizes);
}

py::tuple planned_pass(Index batch, Index input, Index hidden, Index gates, Index itemsize, bool backward,
                       const py::object& batch_sizes, Index steps) {
  const auto shape = planned_shape(batch, input, hidden, batch_sizes, steps);
  const auto plan = plan_pass(shape, gates, itemsize, backward ? Pass::backward : Pass::forward);
  return py::make_tuple(plan.threads, plan.by_batch ? "batch" : "units");
}

py::tuple planned_reduced_pass(Index batch, Index input, Index hidden, Index gates, const std::string& precision,
                               const py::object& batch_sizes, Index steps, Index depth) {
  if (precision != "int8" && precision != "bfloat16") {
    throw py::value_error("expected precision 'int8' or 'bfloat16', got '" + precision + "'");
  }
  const auto shape = planned_shape(batch, input, hidden, batch_sizes, steps);
  const auto plan = plan_reduced_pass(shape, gates, depth > 0 ? depth : hidden,
                                      precision == "int8" ? Precision::int8 : Precision::bfloat16);
  return py::make_tuple(plan.threads, plan.by_batch ? "batch" : "panels");
}

py::tuple dx_after_the_loop(Index batch, Index input, Index hidden, Index gates, Index itemsize,
                            const py::object& batch_sizes) {
  const auto shape = planned_shape(batch, input, hidden, batch_sizes);
  const auto plan = plan_pass(shape, gates, itemsize, Pass::backward);
  const auto per_step = [&](auto scalar, int thread) {
    using Scalar = decltype(scalar);
    const Index align = PanelLayout<Scalar>::kWidth;  // as the kernels split
    const auto part = pass_part(plan, shape, thread, plan.threads, align);
    return InputGradient<Scalar>::computes_per_step(part.inputs.size(), gates * hidden);
  };
  py::list after;
  for (int thread = 0; thread < plan.threads; ++thread) {
    after.append(!(itemsize == 4 ? per_step(float{}, thread) : per_step(double{}, thread)));
  }
  return py::tuple(after);
}

// a (rows, depth) times w^T, w (n, depth) packed as W_hh is, with B's panels in the
// given order: the tests hold both orders to the same bits.
py::array panel_ordered_product(const py::array& a, const py::array& w, bool batch_of_one, bool last_to_first) {
  if (a.ndim() != 2 || w.ndim() != 2 || a.shape(1) != w.shape(1)) {
    throw py::value_error("expected a (rows, depth) and w (n, depth)");
  }
  const Index rows = a.shape(0), depth = a.shape(1), n = w.shape(0);
  py::array out;
  dispatch(a, [&](auto zero) {
    using Scalar = decltype(zero);
    const auto* a_data = checked<Scalar>(a, "a", {rows, depth}, false);
    const auto* w_data = checked<Scalar>(w, "w", {n, depth}, false);
    out = py::array_t<Scalar>({rows, n});
    auto* c = static_cast<Scalar*>(out.mutable_data());
    py::gil_scoped_release release;
    PackedBuffer<Scalar> panels(PanelLayout<Scalar>::size(n, depth));
    pack_rows_as_columns<Scalar>(w_data, depth, n, depth, panels.data());
    multiply_rows<Scalar>({a_data, depth}, rows, depth, panels.data(), n, c, n, false,
                          batch_of_one ? LoneRow::split : LoneRow::as_in_tiles,
                          last_to_first ? PanelOrder::last_to_first : PanelOrder::first_to_last);
  });
  return out;
}

bool interleaves(Index input, Index hidden, Index steps, Index gates, Index itemsize, int threads) {
  const auto shape = shape_of({steps, 1, input, hidden, false}, false, py::none());
  return itemsize == 4 ? interleaves_projection<float>(shape, gates, threads, false, false)
                       : interleaves_projection<double>(shape, gates, threads, false, false);
}

void sense(double slowest_start_us, double longest_sleep_us) {
  using std::chrono::nanoseconds;
  sense_team(nanoseconds(static_cast<long long>(slowest_start_us * 1e3)),
             nanoseconds(static_cast<long long>(longest_sleep_us * 1e3)));
}

std::vector<std::string> built_for() {
  std::vector<std::string> sets;
#if defined(__AVX2__)
  sets.emplace_back("avx2");
#endif
#if defined(__FMA__)
  sets.emplace_back("fma");
#endif
#if defined(__AVX512F__)
  sets.emplace_back("avx512f");
#endif
#if defined(__AVX512BW__)
  sets.emplace_back("avx512bw");
#endif
#if defined(__AVX512VNNI__)
  sets.emplace_back("avx512_vnni");
#endif
#if defined(__AVX512BF16__)
  sets.emplace_back("avx512_bf16");
#endif
#if defined(LSTMCORE_AMX)
  sets.emplace_back("amx");
#endif
  return sets;
}

}  // namespace

void register_diagnostics(py::module_& m) {
  using namespace pybind11::literals;
  m.def(
      "allow_amx", &amx_allowed, "allowed"_a,
      "Whether reduced-precision products may run on AMX tiles (where the CPU and build have them), so that tests "
      "compare both paths.");
  m.def("gate_tanh", &activation<true>, "x"_a, "The core's tanh, for the accuracy tests.");
  m.def("gate_sigmoid", &activation<false>, "x"_a, "The core's sigmoid, for the accuracy tests.");
  m.def("pass_plan", &planned_pass, "batch"_a, "input"_a, "hidden"_a, "gates"_a, "itemsize"_a, "backward"_a,
        "batch_sizes"_a = py::none(), "steps"_a = 1,
        "(threads, 'units' or 'batch'): how an LSTM or GRU pass of this shape (steps, or batch_sizes as "
        "the passes take them) splits over threads.");
  m.def("reduced_pass_plan", &planned_reduced_pass, "batch"_a, "input"_a, "hidden"_a, "gates"_a, "precision"_a,
        "batch_sizes"_a = py::none(), "steps"_a = 1, "depth"_a = 0,
        "(threads, 'panels' or 'batch'): how a reduced-precision forward of this shape splits over threads; "
        "depth: W_hh's (a projected LSTM's proj_size), 0 for hidden.");
  m.def("panel_ordered_product", &panel_ordered_product, "a"_a, "w"_a, "batch_of_one"_a, "last_to_first"_a,
        "a @ w.T as a step's recurrent product computes it, B's panels in either order.");
  m.def("interleaves_projection", &interleaves, "input"_a, "hidden"_a, "steps"_a, "gates"_a, "itemsize"_a,
        "threads"_a,
        "Whether an inference forward of this shape (an LSTM, GRU or RNN of `gates` gate blocks) at batch 1, "
        "without lengths, planned on `threads` threads, runs its input projection inside the steps "
        "(interleaved_projection.hpp).");
  m.attr("tile_rows") = PanelLayout<float>::kRows;
  m.def("sense_team", &sense, "slowest_start_us"_a, "longest_sleep_us"_a,
        "Report a multi-threaded pass's timings, as a pass does (tests).");
  m.attr("per_step_input_gradient_bytes") = kPerStepBytes;
#if defined(LSTMCORE_BF16_TILES)
  m.attr("bfloat16_tile_rows") = detail::kBf16TileRows;
#else
  m.attr("bfloat16_tile_rows") = 0;
#endif
  m.def("built_for", &built_for,
        "The x86 instruction sets this build's reduced-precision kernels may use (the compiler's targets): "
        "a list of 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16', 'amx'.");
  m.def("dx_after_the_loop", &dx_after_the_loop, "batch"_a, "input"_a, "hidden"_a, "gates"_a, "itemsize"_a,
        "batch_sizes"_a = py::none(),
        "Per thread of an LSTM or GRU backward of this shape: whether it computes dx after the time loop "
        "(input_gradient.hpp) rather than step by step.");
}

}  // namespace lstmcore::bindings
