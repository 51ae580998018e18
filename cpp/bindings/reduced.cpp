// Reduced-precision inference (reduced_precision.hpp, reduced_sequence.hpp): _core.ReducedMatrix
// packs an int8 matrix with its row scales, or a bfloat16 one, once; reduced_lstm_forward,
// reduced_gru_forward and reduced_rnn_forward run a layer-direction on two of them, and
// take the float32 passes' arguments, so that a layer's core call can switch kernels. Quantizing (choosing q and
// the scales) is the Python layer's, so that the model files keep exactly what the kernels multiply.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "lstm_options.hpp"
#include "lstmcore/reduced_gru.hpp"
#include "lstmcore/reduced_lstm.hpp"
#include "lstmcore/reduced_rnn.hpp"
#include "narrow.hpp"
#include "parts.hpp"

namespace lstmcore::bindings {

namespace {

Precision precision_named(const std::string& name) {
  if (name == "int8") return Precision::int8;
  if (name == "bfloat16") return Precision::bfloat16;
  throw py::value_error("expected precision 'int8' or 'bfloat16', got '" + name + "'");
}

const char* name_of(Precision p) { return p == Precision::int8 ? "int8" : "bfloat16"; }

// int8: values (rows, depth) int8 and scales (rows,) float32; bfloat16: values (rows,
// depth) uint16 (the bits) and scales None.
std::shared_ptr<ReducedMatrix> make_matrix(const std::string& precision, const py::array& values,
                                           const py::object& scales) {
  const Precision p = precision_named(precision);
  if (values.ndim() != 2) {
    throw py::value_error("expected a matrix of rank 2, got rank " + std::to_string(values.ndim()));
  }
  const Index rows = values.shape(0), depth = values.shape(1);
  // Beyond this depth an int8 row's sum of u8 x s8 products could pass int32's range.
  if (depth > 65535) throw py::value_error("expected at most 65535 columns, got " + std::to_string(depth));
  if (p == Precision::int8) {
    if (scales.is_none()) throw py::value_error("an int8 matrix needs its row scales");
    const auto* q = checked<std::int8_t>(values, "values", {rows, depth}, false);
    // The quantizer's range; the AVX2 kernel negates values, which -128 does not survive.
    if (const auto* low = std::find(q, q + rows * depth, std::int8_t{-128}); low != q + rows * depth) {
      const Index at = low - q;
      throw py::value_error("expected int8 values in [-127, 127], got -128 at (" + std::to_string(at / depth) +
                            ", " + std::to_string(at % depth) + ")");
    }
    const auto* s = checked<float>(array_argument(scales, "scales"), "scales", {rows}, false);
    return std::make_shared<ReducedMatrix>(q, s, rows, depth);
  }
  if (!scales.is_none()) throw py::value_error("a bfloat16 matrix takes no scales");
  const auto* bits = checked<std::uint16_t>(values, "values", {rows, depth}, false);
  return std::make_shared<ReducedMatrix>(bits, rows, depth);
}

// A layer-direction's reduced weights; the biases and the LSTM's peepholes stay float32.
struct ReducedWeights {
  std::shared_ptr<ReducedMatrix> weight_ih, weight_hh;
  py::array bias_ih, bias_hh;
  py::object peephole;
  std::shared_ptr<ReducedMatrix> weight_hr;  // the projected LSTM's (P, H), else null
};

// What a reduced forward leaves besides y: the final cell state.
struct ReducedLstmResult {
  py::array c_n;
};

// The reduced matrices of a family with `gates` gate blocks, checked against x: W_hh
// (gates * H, H), W_ih (gates * H, I), one precision; and the call's Dims.
Dims checked_reduced(const py::array& x, const ReducedWeights& weights, Index gates, const PassOptions& pass) {
  const ReducedMatrix &wi = *weights.weight_ih, &wh = *weights.weight_hh;
  if (wi.precision() != wh.precision()) throw py::value_error("weight_ih and weight_hh differ in precision");
  if (wh.rows() % gates != 0 || wh.rows() / gates != wh.depth()) {
    throw py::value_error("expected weight_hh of shape (" + std::to_string(gates) + " * H, H), got (" +
                          std::to_string(wh.rows()) + ", " + std::to_string(wh.depth()) + ")");
  }
  const Dims d = sequence_dims(x, wh.depth(), pass.batch_first);
  if (d.steps < 1 || d.batch < 1) throw py::value_error("sequence length and batch must be at least 1");
  if (wi.rows() != wh.rows() || wi.depth() != d.input) {
    throw py::value_error("expected weight_ih of shape (" + std::to_string(wh.rows()) + ", " +
                          std::to_string(d.input) + "), got (" + std::to_string(wi.rows()) + ", " +
                          std::to_string(wi.depth()) + ")");
  }
  return d;
}

void refuse_tape(bool taped) {
  if (taped) throw py::value_error("a reduced-precision forward keeps no tape: it is for inference only");
}

// The arrays every reduced forward takes, checked: x, h0, y (this direction's columns
// from pass.y_offset), the biases; and the pass's SequenceShape.
struct ReducedArrays {
  const float *x, *h0, *bias_ih, *bias_hh;
  float* y;
  Index width;
  SequenceShape shape;
};

ReducedArrays checked_reduced_arrays(const py::array& x, const ReducedWeights& weights, const py::array& h0,
                                     const py::array& y, const PassOptions& pass, const Dims& d, Index gates) {
  ReducedArrays a{};
  a.width = checked_offset(y, pass.y_offset, d.hidden);
  a.shape = shape_of(d, pass.reverse, pass.batch_sizes);
  a.bias_ih = checked<float>(weights.bias_ih, "bias_ih", {gates * d.hidden}, false);
  a.bias_hh = checked<float>(weights.bias_hh, "bias_hh", {gates * d.hidden}, false);
  a.x = checked<float>(x, "x", sequence_shape(d, d.input), false);
  a.h0 = checked<float>(h0, "h0", {d.batch, d.hidden}, false);
  a.y = checked<float>(y, "y", sequence_shape(d, a.width), true);
  return a;
}

ReducedLstmResult reduced_lstm_forward(const py::array& x, const ReducedWeights& weights, const py::array& h0,
                                       const py::array& c0, const py::array& y, const PassOptions& pass,
                                       const LstmCallOptions& cell_options, bool taped) {
  refuse_tape(taped);
  ReducedLstmResult result;
  dispatch_cell<true>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const Dims d = checked_reduced(x, weights, K, pass);
    const ReducedArrays a = checked_reduced_arrays(x, weights, h0, y, pass, d, K);
    const auto options = checked_cell_options<float>(cell_options, weights.peephole, py::none(), d);
    if (options.zoneout_h || options.recurrent_mask) {
      throw py::value_error("a reduced-precision forward takes no training masks (recurrent dropout, zoneout)");
    }
    const auto* c0p = checked<float>(c0, "c0", {d.batch, d.hidden}, false);
    result.c_n = py::array_t<float>({d.batch, d.hidden});
    auto* c_n = static_cast<float*>(result.c_n.mutable_data());
    py::gil_scoped_release release;
    lstmcore::reduced_lstm_forward<Kind::template type>(
        a.shape, sequence(a.x, d, d.input), {*weights.weight_ih, *weights.weight_hh, a.bias_ih, a.bias_hh}, options,
        a.h0, c0p, sequence(a.y, d, a.width, pass.y_offset), c_n);
  });
  return result;
}

// The projected LSTM's arguments are projected_lstm_forward's: W_hh (K * H, P) and W_hr
// (P, H) reduced; h0 (B, P), c0 (B, H), y (T, B, P).
ReducedLstmResult reduced_projected_lstm_forward(const py::array& x, const ReducedWeights& weights,
                                                 const py::array& h0, const py::array& c0, const py::array& y,
                                                 const PassOptions& pass, const LstmCallOptions& cell_options,
                                                 bool taped) {
  refuse_tape(taped);
  if (!weights.weight_hr) throw py::value_error("the projected LSTM needs weight_hr");
  const ReducedMatrix &wi = *weights.weight_ih, &wh = *weights.weight_hh, &hr = *weights.weight_hr;
  ReducedLstmResult result;
  dispatch_cell<false>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    if (wi.precision() != wh.precision() || hr.precision() != wh.precision()) {
      throw py::value_error("weight_ih, weight_hh and weight_hr differ in precision");
    }
    const Index H = hr.depth(), P = hr.rows();
    if (wh.rows() != K * H || wh.depth() != P) {
      throw py::value_error("expected weight_hh of shape (" + std::to_string(K * H) + ", " + std::to_string(P) +
                            "), got (" + std::to_string(wh.rows()) + ", " + std::to_string(wh.depth()) + ")");
    }
    const Dims d = sequence_dims(x, H, pass.batch_first);
    if (d.steps < 1 || d.batch < 1) throw py::value_error("sequence length and batch must be at least 1");
    if (wi.rows() != K * H || wi.depth() != d.input) {
      throw py::value_error("expected weight_ih of shape (" + std::to_string(K * H) + ", " +
                            std::to_string(d.input) + "), got (" + std::to_string(wi.rows()) + ", " +
                            std::to_string(wi.depth()) + ")");
    }
    const Index width = checked_offset(y, pass.y_offset, P);
    const auto shape = shape_of(d, pass.reverse, pass.batch_sizes);
    const auto* bi = checked<float>(weights.bias_ih, "bias_ih", {K * H}, false);
    const auto* bh = checked<float>(weights.bias_hh, "bias_hh", {K * H}, false);
    const auto options = checked_cell_options<float>(cell_options, weights.peephole, py::none(), d);
    if (options.zoneout() || options.recurrent_mask) {
      throw py::value_error("the projected LSTM takes no recurrent_mask or zoneout");
    }
    const auto* xp = checked<float>(x, "x", sequence_shape(d, d.input), false);
    const auto* h0p = checked<float>(h0, "h0", {d.batch, P}, false);
    const auto* c0p = checked<float>(c0, "c0", {d.batch, H}, false);
    auto* yp = checked<float>(y, "y", sequence_shape(d, width), true);
    result.c_n = py::array_t<float>({d.batch, H});
    auto* c_n = static_cast<float*>(result.c_n.mutable_data());
    py::gil_scoped_release release;
    lstmcore::reduced_projected_lstm_forward<Kind::template type>(shape, sequence(xp, d, d.input), {wi, wh, bi, bh},
                                                                  hr, options, h0p, c0p,
                                                                  sequence(yp, d, width, pass.y_offset), c_n);
  });
  return result;
}

// The GRU's arguments are gru_forward's; only its default form has a reduced kernel.
void reduced_gru_forward(const py::array& x, const ReducedWeights& weights, const py::array& h0, const py::array& y,
                         const PassOptions& pass, bool taped, bool reset_after, const py::object& activations,
                         double clip) {
  refuse_tape(taped);
  if (!reset_after) throw py::value_error("a reduced-precision GRU applies the reset gate after W_hn only");
  if (!activations.is_none() || clip != 0.0) {
    throw py::value_error("a reduced-precision GRU has sigmoid and tanh only, without clip");
  }
  const Dims d = checked_reduced(x, weights, 3, pass);
  const ReducedArrays a = checked_reduced_arrays(x, weights, h0, y, pass, d, 3);
  py::gil_scoped_release release;
  lstmcore::reduced_gru_forward(a.shape, sequence(a.x, d, d.input),
                                {*weights.weight_ih, *weights.weight_hh, a.bias_ih, a.bias_hh}, a.h0,
                                sequence(a.y, d, a.width, pass.y_offset));
}

// The RNN's arguments are rnn_forward's; tanh and relu have reduced kernels.
void reduced_rnn_forward(const py::array& x, const ReducedWeights& weights, const py::array& h0, const py::array& y,
                         const PassOptions& pass, const py::object& nonlinearity, bool taped, double clip) {
  refuse_tape(taped);
  const std::string name = py::isinstance<py::str>(nonlinearity) ? nonlinearity.cast<std::string>() : "";
  if ((name != "tanh" && name != "relu") || clip != 0.0) {
    throw py::value_error("a reduced-precision RNN has nonlinearity 'tanh' or 'relu' only, without clip; got " +
                          std::string(py::str(nonlinearity)));
  }
  const Dims d = checked_reduced(x, weights, 1, pass);
  const ReducedArrays a = checked_reduced_arrays(x, weights, h0, y, pass, d, 1);
  const ReducedGatedWeights w{*weights.weight_ih, *weights.weight_hh, a.bias_ih, a.bias_hh};
  const auto xs = sequence(a.x, d, d.input);
  const auto ys = sequence(a.y, d, a.width, pass.y_offset);
  py::gil_scoped_release release;
  if (name == "tanh") {
    lstmcore::reduced_rnn_forward<TanhNonlinearity>(a.shape, xs, w, a.h0, ys);
  } else {
    lstmcore::reduced_rnn_forward<ReluNonlinearity>(a.shape, xs, w, a.h0, ys);
  }
}

// The reduced forwards bound to their weights and options, checked once, for a prepared
// layer (narrow.hpp); the checks are the forwards' own, on a sequence of one step.
py::array narrow_probe(Index input) { return py::array_t<float>({Index(1), Index(1), input}); }

NarrowPass reduced_lstm_narrow_pass(const ReducedWeights& weights, const PassOptions& pass,
                                    const LstmCallOptions& given_options, bool taped) {
  refuse_tape(taped);
  const LstmCallOptions cell_options = held_options(given_options);
  NarrowPass narrow;
  const py::array probe = narrow_probe(weights.weight_ih->depth());
  dispatch_cell<true>(cell_options.cell, [&](auto kind) {
    using Kind = decltype(kind);
    constexpr Index K = Kind::template type<float>::kGates;
    const bool projected = weights.weight_hr != nullptr;
    if (projected && cell_options.cell.rfind("general_", 0) == 0) {
      throw py::value_error("the projected LSTM's general cell has no peephole or coupled forms");
    }
    Index H = 0, P = 0;
    if (projected) {
      H = weights.weight_hr->depth();
      P = weights.weight_hr->rows();
      const ReducedMatrix &wi = *weights.weight_ih, &wh = *weights.weight_hh, &hr = *weights.weight_hr;
      if (wi.precision() != wh.precision() || hr.precision() != wh.precision()) {
        throw py::value_error("weight_ih, weight_hh and weight_hr differ in precision");
      }
      if (wh.rows() != K * H || wh.depth() != P || wi.rows() != K * H) {
        throw py::value_error("expected weight_ih (" + std::to_string(K * H) + ", I) and weight_hh (" +
                              std::to_string(K * H) + ", " + std::to_string(P) + ")");
      }
    } else {
      H = checked_reduced(probe, weights, K, pass).hidden;
      P = H;
    }
    const Dims d = weight_dims(weights.weight_ih->depth(), H);
    const auto* bi = checked<float>(weights.bias_ih, "bias_ih", {K * H}, false);
    const auto* bh = checked<float>(weights.bias_hh, "bias_hh", {K * H}, false);
    const auto options = checked_cell_options<float>(cell_options, weights.peephole, py::none(), d);
    if (options.zoneout_h || options.recurrent_mask) {
      throw py::value_error("a reduced-precision forward takes no training masks (recurrent dropout, zoneout)");
    }
    if (projected && options.zoneout()) throw py::value_error("the projected LSTM takes no zoneout");
    narrow = narrow_pass_of<float>(pass, d.input, H, P, H);
    // weights and cell_options hold what the pointers below point into.
    narrow.run = [weights, cell_options, bi, bh, options, form = narrow.form](const NarrowArrays& a) {
      const auto v = narrow_views<float>(form, a);
      const ReducedGatedWeights w{*weights.weight_ih, *weights.weight_hh, bi, bh};
      if (weights.weight_hr) {
        lstmcore::reduced_projected_lstm_forward<Kind::template type>(v.shape, v.x, w, *weights.weight_hr, options,
                                                                      v.h0, v.c0, v.y, v.c_n);
      } else {
        lstmcore::reduced_lstm_forward<Kind::template type>(v.shape, v.x, w, options, v.h0, v.c0, v.y, v.c_n);
      }
    };
  });
  return narrow;
}

// The reduced GRU's and RNN's pass: W_ih, W_hh and their float32 biases.
template <typename Forward>
NarrowPass reduced_single_state_pass(const ReducedWeights& weights, const PassOptions& pass, Index gates,
                                     Forward forward) {
  const Index H = checked_reduced(narrow_probe(weights.weight_ih->depth()), weights, gates, pass).hidden;
  const auto* bi = checked<float>(weights.bias_ih, "bias_ih", {gates * H}, false);
  const auto* bh = checked<float>(weights.bias_hh, "bias_hh", {gates * H}, false);
  NarrowPass narrow = narrow_pass_of<float>(pass, weights.weight_ih->depth(), H, H, 0);
  narrow.run = [weights, bi, bh, forward, form = narrow.form](const NarrowArrays& a) {
    const auto v = narrow_views<float>(form, a);
    forward(v, ReducedGatedWeights{*weights.weight_ih, *weights.weight_hh, bi, bh});
  };
  return narrow;
}

NarrowPass reduced_gru_narrow_pass(const ReducedWeights& weights, const PassOptions& pass, bool taped,
                                   bool reset_after, const py::object& activations, double clip) {
  refuse_tape(taped);
  if (!reset_after) throw py::value_error("a reduced-precision GRU applies the reset gate after W_hn only");
  if (!activations.is_none() || clip != 0.0) {
    throw py::value_error("a reduced-precision GRU has sigmoid and tanh only, without clip");
  }
  return reduced_single_state_pass(weights, pass, 3, [](const NarrowViews<float>& v, const ReducedGatedWeights& w) {
    lstmcore::reduced_gru_forward(v.shape, v.x, w, v.h0, v.y);
  });
}

NarrowPass reduced_rnn_narrow_pass(const ReducedWeights& weights, const PassOptions& pass,
                                   const py::object& nonlinearity, bool taped, double clip) {
  refuse_tape(taped);
  const std::string name = py::isinstance<py::str>(nonlinearity) ? nonlinearity.cast<std::string>() : "";
  if ((name != "tanh" && name != "relu") || clip != 0.0) {
    throw py::value_error("a reduced-precision RNN has nonlinearity 'tanh' or 'relu' only, without clip; got " +
                          std::string(py::str(nonlinearity)));
  }
  if (name == "tanh") {
    return reduced_single_state_pass(weights, pass, 1,
                                     [](const NarrowViews<float>& v, const ReducedGatedWeights& w) {
                                       lstmcore::reduced_rnn_forward<TanhNonlinearity>(v.shape, v.x, w, v.h0, v.y);
                                     });
  }
  return reduced_single_state_pass(weights, pass, 1, [](const NarrowViews<float>& v, const ReducedGatedWeights& w) {
    lstmcore::reduced_rnn_forward<ReluNonlinearity>(v.shape, v.x, w, v.h0, v.y);
  });
}

// out (rows, w.rows) = a (rows, depth) W^T: the product alone, for tests against a NumPy
// model of the quantization.
py::array reduced_product_of(const ReducedMatrix& w, const py::array& a) {
  if (a.ndim() != 2) throw py::value_error("expected a of rank 2");
  const Index rows = a.shape(0);
  const auto* ap = checked<float>(a, "a", {rows, w.depth()}, false);
  ReducedRows converted(w.precision(), rows, w.depth());
  for (Index r = 0; r < rows; ++r) converted.convert(r, ap + r * w.depth());
  py::array_t<float> out({rows, w.rows()});
  reduced_product(w, converted, rows, {out.mutable_data(), w.rows()}, false);
  return std::move(out);
}

}  // namespace

void register_reduced(py::module_& m) {
  using namespace pybind11::literals;
  py::class_<ReducedMatrix, std::shared_ptr<ReducedMatrix>>(
      m, "ReducedMatrix",
      "A weight matrix in reduced precision, packed once for the kernels: 'int8' values (rows, depth) with "
      "float32 row scales (W = values * scales[:, None]), or 'bfloat16' values as uint16 bits.")
      .def(py::init(&make_matrix), "precision"_a, "values"_a, "scales"_a = py::none())
      .def_property_readonly("precision", [](const ReducedMatrix& w) { return name_of(w.precision()); })
      .def_property_readonly("shape", [](const ReducedMatrix& w) { return py::make_tuple(w.rows(), w.depth()); })
      .def_property_readonly("nbytes", &ReducedMatrix::bytes, "Bytes of the packed values.")
      .def_property_readonly(
          "kernel", [](const ReducedMatrix& w) { return reduced_kernel(w.precision()); },
          "The kernels its products run on here: 'amx+avx512_vnni', 'avx512_vnni', 'amx_bf16', 'avx512_bf16', "
          "'avx2' or 'portable'.");
  py::class_<ReducedWeights>(
      m, "ReducedWeights",
      "A layer-direction's weights for the reduced forwards: W_ih and W_hh as ReducedMatrix, "
      "float32 biases, and the LSTM's peepholes (3, H) or None.")
      .def(py::init([](std::shared_ptr<ReducedMatrix> wi, std::shared_ptr<ReducedMatrix> wh, py::array bi,
                       py::array bh, py::object peephole, std::shared_ptr<ReducedMatrix> hr) {
             if (!wi || !wh) throw py::type_error("expected ReducedMatrix weights, got None");
             return ReducedWeights{std::move(wi), std::move(wh),       std::move(bi),
                                   std::move(bh), std::move(peephole), std::move(hr)};
           }),
           "weight_ih"_a, "weight_hh"_a, "bias_ih"_a, "bias_hh"_a, "peephole"_a = py::none(),
           "weight_hr"_a = nullptr)
      .def_readonly("weight_ih", &ReducedWeights::weight_ih)
      .def_readonly("weight_hh", &ReducedWeights::weight_hh)
      .def_readonly("weight_hr", &ReducedWeights::weight_hr);
  py::class_<ReducedLstmResult>(m, "ReducedLstmResult", "What reduced_lstm_forward leaves besides y.")
      .def_readonly("c_n", &ReducedLstmResult::c_n, "(B, H): each sequence's last c_t.");
  m.def("reduced_lstm_forward", &reduced_lstm_forward, "x"_a, "weights"_a, "h0"_a, "c0"_a, "y"_a, "options"_a,
        "cell_options"_a, "taped"_a = false,
        "An LSTM layer-direction's inference with reduced-precision weights: writes y (float32), returns c_n.");
  m.def("reduced_projected_lstm_forward", &reduced_projected_lstm_forward, "x"_a, "weights"_a, "h0"_a, "c0"_a,
        "y"_a, "options"_a, "cell_options"_a, "taped"_a = false,
        "A projected LSTM layer-direction's inference with reduced-precision weights (weight_hr given): writes y, "
        "returns c_n.");
  m.def("reduced_gru_forward", &reduced_gru_forward, "x"_a, "weights"_a, "h0"_a, "y"_a, "options"_a,
        "taped"_a = false, py::kw_only(), "reset_after"_a = true, "activations"_a = py::none(), "clip"_a = 0.0,
        "A GRU layer-direction's inference with reduced-precision weights: writes y (float32).");
  m.def("reduced_rnn_forward", &reduced_rnn_forward, "x"_a, "weights"_a, "h0"_a, "y"_a, "options"_a,
        "nonlinearity"_a, "taped"_a = false, py::kw_only(), "clip"_a = 0.0,
        "An RNN layer-direction's inference with reduced-precision weights: writes y (float32).");
  m.def("reduced_lstm_narrow_pass", &reduced_lstm_narrow_pass, "weights"_a, "options"_a, "cell_options"_a,
        "taped"_a = false,
        "reduced_lstm_forward (or, with weight_hr, the projected one) bound, for a NarrowStack.");
  m.def("reduced_gru_narrow_pass", &reduced_gru_narrow_pass, "weights"_a, "options"_a, "taped"_a = false,
        py::kw_only(), "reset_after"_a = true, "activations"_a = py::none(), "clip"_a = 0.0,
        "reduced_gru_forward bound to all but its arrays, for a NarrowStack.");
  m.def("reduced_rnn_narrow_pass", &reduced_rnn_narrow_pass, "weights"_a, "options"_a, "nonlinearity"_a,
        "taped"_a = false, py::kw_only(), "clip"_a = 0.0,
        "reduced_rnn_forward bound to all but its arrays, for a NarrowStack.");
  m.def("reduced_product", &reduced_product_of, "weights"_a, "a"_a,
        "a (rows, depth) float32 times W^T in the matrix's precision, activations converted as the passes do.");
}

}  // namespace lstmcore::bindings
