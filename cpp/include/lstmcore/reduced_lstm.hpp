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
    const Index B = s_.batch, H = s_.hidden, G = Cell<float>::kGates * H, r0 = at.rows.begin;
    float* c_t = cells_ + (at.step & 1) * B * H;
    const float* c_later = cells_ + ((at.step - 1) & 1) * B * H;
    const StateRows<float> c_prev = c_before_.at(at.step, {c0_, H}, {c_later, H}, {r0, at.live_end});
    for (Index b = r0; b < at.live_end; ++b) {
      float* h_t = y.at(at.t, b);
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

}  // namespace lstmcore
