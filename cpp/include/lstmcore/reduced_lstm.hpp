// The LSTM family's forward with reduced-precision weights (reduced_sequence.hpp): the
// same cells as lstm_sequence.hpp (plain, peephole, coupled, general activations,
// ablation clamps, zoneout's expectation) on the same sequences (either layout, either
// direction, variable lengths as packed batches).
#pragma once

#include <algorithm>

#include "lstmcore/lstm_options.hpp"
#include "lstmcore/reduced_sequence.hpp"
#include "lstmcore/zoneout.hpp"

namespace lstmcore {

// One thread's element-wise part: the cell on its rows, c_t kept in two (B, H) buffers
// that alternate step by step (`cells`), each sequence's last c_t copied to c_n.
template <template <typename> class Cell>
class ReducedLstmRows {
 public:
  ReducedLstmRows(const SequenceShape& s, const LstmOptions<float>& options, const float* bias, const float* c0,
                  float* cells, float* c_n)
      : s_(s),
        options_(options),
        cell_(options, {0, s.hidden}, s.hidden, bias),
        c0_(c0),
        cells_(cells),
        c_n_(c_n),
        c_before_(s, s.hidden) {}

  void step(const ReducedStep& at, SequenceView<float> y) {
    step_into(at, [&](Index b) { return y.at(at.t, b); });
  }

  // As step, with row b's h_t (the cell's output) written to h_out(b).
  template <typename HOut>
  void step_into(const ReducedStep& at, HOut&& h_out) {
    const Index B = s_.batch, H = s_.hidden, G = Cell<float>::kGates * H, r0 = at.rows.begin;
    float* c_t = cells_ + (at.step & 1) * B * H;
    const float* c_later = cells_ + ((at.step - 1) & 1) * B * H;
    const StateRows<float> c_prev = c_before_.at(at.step, {c0_, H}, {c_later, H}, {r0, at.live_end});
    for (Index b = r0; b < at.live_end; ++b) {
      float* h_t = h_out(b);
      cell_.forward(at.pre + (b - r0) * G, c_prev.row(b), c_t + b * H, h_t);
      if (options_.zoneout()) {
        Zoneout<float>(options_, at.t * B + b, H, 0)
            .forward(H, c_prev.row(b), c_t + b * H, at.h_prev.row(b), h_t, nullptr);
      }
    }
    const Index ending = std::clamp(s_.active_after(at.step), r0, at.live_end);
    for (Index b = ending; b < at.live_end; ++b) std::copy_n(c_t + b * H, H, c_n_ + b * H);
  }

 private:
  const SequenceShape& s_;
  const LstmOptions<float>& options_;
  Cell<float> cell_;
  const float* c0_;
  float* cells_;
  float* c_n_;
  PreviousState<float> c_before_;
};

// The projected LSTM's element-wise part: the cell's output r_t = o * tanh(c_t) into this
// thread's rows of a buffer, then h_t = r_t W_hr^T (reduced) into y.
template <template <typename> class Cell>
class ReducedProjectedLstmRows {
 public:
  ReducedProjectedLstmRows(const SequenceShape& s, const LstmOptions<float>& options, const float* bias,
                           const float* c0, float* cells, float* c_n, const ReducedMatrix& weight_hr, Range rows)
      : cells_(s, options, bias, c0, cells, c_n),
        weight_hr_(weight_hr),
        output_(rows.size() * s.hidden),
        converted_(weight_hr.precision(), rows.size(), s.hidden),
        H_(s.hidden) {}

  void step(const ReducedStep& at, SequenceView<float> y) {
    const Index r0 = at.rows.begin;
    cells_.step_into(at, [&](Index b) { return output_.data() + (b - r0) * H_; });
    for (Index b = r0; b < at.live_end; ++b) converted_.convert(b - r0, output_.data() + (b - r0) * H_);
    reduced_product(weight_hr_, converted_, at.live_end - r0, {y.at(at.t, r0), y.batch_stride}, false);
  }

 private:
  ReducedLstmRows<Cell> cells_;
  const ReducedMatrix& weight_hr_;
  PassBuffer<float> output_;
  ReducedRows converted_;
  Index H_;
};

// x (T, B, I), h0 and c0 (B, H), y (T, B, H) written, c_n (B, H) each sequence's last c_t
// written: as lstm_forward without a tape.
template <template <typename> class Cell>
void reduced_lstm_forward(const SequenceShape& s, SequenceView<const float> x, const ReducedGatedWeights& w,
                          const LstmOptions<float>& options, const float* h0, const float* c0,
                          SequenceView<float> y, float* c_n) {
  constexpr Index K = Cell<float>::kGates;
  const Index H = s.hidden;
  PassBuffer<float> bias(K * H), cells(2 * s.batch * H);
  fused_gate_bias<float>(w.biases(), K, K, H, {0, H}, bias.data());
  reduced_sequence(s, x, w, h0, y, K, false,
                   [&](Range) { return ReducedLstmRows<Cell>(s, options, bias.data(), c0, cells.data(), c_n); });
}

// The projected LSTM: h0 (B, P), y (T, B, P), W_hh (K*H, P) and W_hr (P, H) reduced; c0 and
// c_n (B, H): as projected_lstm_forward without a tape.
template <template <typename> class Cell>
void reduced_projected_lstm_forward(const SequenceShape& s, SequenceView<const float> x,
                                    const ReducedGatedWeights& w, const ReducedMatrix& weight_hr,
                                    const LstmOptions<float>& options, const float* h0, const float* c0,
                                    SequenceView<float> y, float* c_n) {
  constexpr Index K = Cell<float>::kGates;
  const Index H = s.hidden;
  PassBuffer<float> bias(K * H), cells(2 * s.batch * H);
  fused_gate_bias<float>(w.biases(), K, K, H, {0, H}, bias.data());
  reduced_sequence(s, x, w, h0, y, K, false, [&](Range rows) {
    return ReducedProjectedLstmRows<Cell>(s, options, bias.data(), c0, cells.data(), c_n, weight_hr, rows);
  });
}

}  // namespace lstmcore
