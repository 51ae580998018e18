// GRU, one layer and one direction, forward and backward through time.
//
// PyTorch's formulation, gates in the order r, z, n; the reset gate multiplies the
// recurrent part of n after its bias:
//   r = gate_sigmoid(x W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)
//   z = gate_sigmoid(x W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
//   m = h_{t-1} W_hn^T + b_hn
//   n = gate_tanh(x W_in^T + b_in + r * m)
//   h_t = (1 - z) * n + z * h_{t-1}
//
// Organised as lstm.hpp: hoisted input GEMM, per-step recurrent product for this
// thread's units and one fused element-wise pass, weight-gradient GEMMs after the loop.
#pragma once

#include <omp.h>

#include <vector>

#include "lstmcore/activations.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

// Width of a GRU tape row: r, z, n and m, H each.
inline Index gru_tape_width(Index hidden) { return 4 * hidden; }

// x      (T*B, I)         input rows, time-major
// h0     (B, H)           initial state
// y      (T*B, H), row stride y.stride: h_t for every t (written)
// gates  (T*B, 4H)        tape: r, z, n and m = h_{t-1} W_hn^T + b_hn (written)
// The final state is the row block of y at time_at(T-1).
template <typename Scalar>
void gru_forward(const SequenceShape& s, const Scalar* x, const GatedWeights<Scalar>& w,
                 const Scalar* h0, SequenceView<Scalar> y, Scalar* gates) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 3 * H, W = gru_tape_width(H);
  const Index rows = s.rows();
  const auto x_all = view(x, rows, I, I);
  const auto weight_ih = view(w.weight_ih, G, I, I);
  const auto weight_hh = view(w.weight_hh, G, H, H);
  const ConstArrayView<Scalar> bias_ih(w.bias_ih, G), bias_hh(w.bias_hh, G);
  auto tape_all = view(gates, rows, W, W);
  const int threads = plan_threads(B, H, 3);

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int thread = omp_get_thread_num();
    const int team = omp_get_num_threads();

    // Hoisted input projection; b_hr and b_hz join it, b_hn must stay inside r * m.
    const Range rows_mine = split_range(rows, thread, team, 1);
    if (rows_mine.size() > 0) {
      auto block = tape_all.middleRows(rows_mine.begin, rows_mine.size()).leftCols(G);
      block.noalias() = x_all.middleRows(rows_mine.begin, rows_mine.size()) * weight_ih.transpose();
      block.array().rowwise() += bias_ih.transpose();
      block.leftCols(2 * H).array().rowwise() += bias_hh.head(2 * H).transpose();
    }
#pragma omp barrier

    const Range units = split_range(H, thread, team, kUnitAlign);
    const Index n = units.size();
    const ConstArrayView<Scalar> bias_hn(w.bias_hh + 2 * H + units.begin, n);
    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Scalar* h_prev = step == 0 ? h0 : y.row(s.previous_time(t), B);
      const Index h_prev_stride = step == 0 ? H : y.stride;
      Scalar* tape_t = gates + t * B * W;
      Scalar* h_t = y.row(t, B);
      if (n > 0) {
        const auto h_prev_all = view(h_prev, B, H, h_prev_stride);
        auto tape_now = view(tape_t, B, W, W);
        for (Index gate = 0; gate < 2; ++gate) {
          tape_now.middleCols(gate * H + units.begin, n).noalias() +=
              h_prev_all * weight_hh.middleRows(gate * H + units.begin, n).transpose();
        }
        tape_now.middleCols(3 * H + units.begin, n).noalias() =
            h_prev_all * weight_hh.middleRows(2 * H + units.begin, n).transpose();
        for (Index b = 0; b < B; ++b) {
          Scalar* a = tape_t + b * W + units.begin;
          ArrayView<Scalar> r(a, n), z(a + H, n), cand(a + 2 * H, n), m(a + 3 * H, n);
          ConstArrayView<Scalar> h_before(h_prev + b * h_prev_stride + units.begin, n);
          ArrayView<Scalar> h_after(h_t + b * y.stride + units.begin, n);
          r = gate_sigmoid(r);
          z = gate_sigmoid(z);
          m += bias_hn;
          cand = gate_tanh(cand + r * m);
          h_after = (Scalar(1) - z) * cand + z * h_before;
        }
      }
#pragma omp barrier
    }
  }
}

// Inputs as for gru_forward, plus
// dy     (T*B, H), row stride dy.stride: gradient of y
// dh_n   (B, H) gradient of the final state, or nullptr for zero
// Outputs:
// dx     (T*B, I): gradient of x, ADDED to
// grads  gradients of the weights, ADDED to
// dh0    (B, H): gradient of the initial state (written)
template <typename Scalar>
void gru_backward(const SequenceShape& s, const Scalar* x, const GatedWeights<Scalar>& w,
                  const Scalar* h0, SequenceView<const Scalar> y, const Scalar* gates,
                  SequenceView<const Scalar> dy, const Scalar* dh_n, Scalar* dx,
                  const GatedGrads<Scalar>& grads, Scalar* dh0) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 3 * H, W = gru_tape_width(H);
  const Index rows = s.rows();
  const auto x_all = view(x, rows, I, I);
  const auto weight_ih = view(w.weight_ih, G, I, I);
  const auto weight_hh = view(w.weight_hh, G, H, H);
  // (T*B, 3H) each: gradients of the input-side pre-activations (x W_i^T + b_i) and of
  // the recurrent-side ones (h W_h^T + b_h); they differ only in n, where r scales m.
  std::vector<Scalar> d_input_buffer(static_cast<size_t>(rows * G));
  std::vector<Scalar> d_hidden_buffer(static_cast<size_t>(rows * G));
  Scalar* d_input = d_input_buffer.data();
  Scalar* d_hidden = d_hidden_buffer.data();
  // dh0 doubles as the running gradient of h_t.
  auto dh = view(dh0, B, H, H);
  if (dh_n) dh = view(dh_n, B, H, H); else dh.setZero();
  const int threads = plan_threads(B, H, 3);

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int thread = omp_get_thread_num();
    const int team = omp_get_num_threads();
    const Range units = split_range(H, thread, team, kUnitAlign);
    const Index n = units.size();
    std::vector<Scalar> scratch(static_cast<size_t>(2 * n));
    ArrayView<Scalar> dh_total(scratch.data(), n), da_n(scratch.data() + n, n);

    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      const Scalar* h_prev = step == 0 ? h0 : y.row(s.previous_time(t), B);
      const Index h_prev_stride = step == 0 ? H : y.stride;
      const Scalar* tape_t = gates + t * B * W;
      const Scalar* dy_t = dy.row(t, B);
      Scalar* d_input_t = d_input + t * B * G;
      Scalar* d_hidden_t = d_hidden + t * B * G;
      for (Index b = 0; b < B && n > 0; ++b) {
        const Scalar* a = tape_t + b * W + units.begin;
        ConstArrayView<Scalar> r(a, n), z(a + H, n), cand(a + 2 * H, n), m(a + 3 * H, n);
        ConstArrayView<Scalar> h_before(h_prev + b * h_prev_stride + units.begin, n);
        ConstArrayView<Scalar> dy_b(dy_t + b * dy.stride + units.begin, n);
        ArrayView<Scalar> dh_b(dh0 + b * H + units.begin, n);
        Scalar* dxa = d_input_t + b * G + units.begin;
        Scalar* dha = d_hidden_t + b * G + units.begin;
        ArrayView<Scalar> dx_r(dxa, n), dx_z(dxa + H, n), dx_n(dxa + 2 * H, n);
        ArrayView<Scalar> dh_r(dha, n), dh_z(dha + H, n), dh_n_gate(dha + 2 * H, n);

        dh_total = dy_b + dh_b;
        da_n = dh_total * (Scalar(1) - z) * (Scalar(1) - cand.square());
        dx_r = da_n * m * r * (Scalar(1) - r);
        dx_z = dh_total * (h_before - cand) * z * (Scalar(1) - z);
        dx_n = da_n;
        dh_r = dx_r;
        dh_z = dx_z;
        dh_n_gate = da_n * r;
        dh_b = dh_total * z;  // the direct path; the recurrent products add below
      }
#pragma omp barrier
      // As in lstm_backward: this thread's units of dh_{t-1} need all of step t's
      // gate gradients; the next step reads only the units written here.
      if (n > 0) {
        dh.middleCols(units.begin, n).noalias() +=
            view(static_cast<const Scalar*>(d_hidden_t), B, G, G) *
            weight_hh.middleCols(units.begin, n);
      }
    }
#pragma omp barrier

    const auto d_input_all = view(static_cast<const Scalar*>(d_input), rows, G, G);
    const auto d_hidden_all = view(static_cast<const Scalar*>(d_hidden), rows, G, G);
    const Range gate_rows = split_range(G, thread, team, kUnitAlign);
    if (gate_rows.size() > 0) {
      const Index r0 = gate_rows.begin, nr = gate_rows.size();
      const auto d_input_mine = d_input_all.middleCols(r0, nr);
      const auto d_hidden_mine = d_hidden_all.middleCols(r0, nr);
      view(grads.weight_ih, G, I, I).middleRows(r0, nr).noalias() +=
          d_input_mine.transpose() * x_all;
      auto d_weight_hh = view(grads.weight_hh, G, H, H).middleRows(r0, nr);
      const Index first = s.time_at(0);
      d_weight_hh.noalias() +=
          d_hidden_mine.middleRows(first * B, B).transpose() * view(h0, B, H, H);
      if (s.steps > 1) {
        const Index later_rows = (s.steps - 1) * B;
        const Index d_start = s.reverse ? 0 : B;
        const Index h_start = s.reverse ? B : 0;
        d_weight_hh.noalias() += d_hidden_mine.middleRows(d_start, later_rows).transpose() *
                                 view(y.data, rows, H, y.stride).middleRows(h_start, later_rows);
      }
      ArrayView<Scalar>(grads.bias_ih + r0, nr) += d_input_mine.colwise().sum().transpose().array();
      ArrayView<Scalar>(grads.bias_hh + r0, nr) += d_hidden_mine.colwise().sum().transpose().array();
    }
    const Range rows_mine = split_range(rows, thread, team, 1);
    if (rows_mine.size() > 0) {
      view(dx, rows, I, I).middleRows(rows_mine.begin, rows_mine.size()).noalias() +=
          d_input_all.middleRows(rows_mine.begin, rows_mine.size()) * weight_ih;
    }
  }
}

}  // namespace lstmcore
