// LSTM, one layer and one direction, forward and backward through time.
//
// PyTorch's formulation, gates in the order i, f, g, o:
//   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh          (B, 4H)
//   i = gate_sigmoid(a_i)  f = gate_sigmoid(a_f)  g = gate_tanh(a_g)  o = gate_sigmoid(a_o)
//   c_t = f * c_{t-1} + i * g
//   h_t = o * gate_tanh(c_t)
//
// Speed (DESIGN.md): the input product for all T*B rows is one GEMM before the time
// loop; each step is the recurrent product for this thread's hidden units followed by
// one fused element-wise pass; weight gradients are GEMMs after the loop. One OpenMP
// region covers the pass; nothing is allocated inside the loop.
#pragma once

#include <omp.h>

#include <vector>

#include "lstmcore/activations.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/threading.hpp"

namespace lstmcore {

// x      (T*B, I)                input rows, time-major
// h0, c0 (B, H)                  initial state
// y      (T*B, H), row stride y.stride: h_t for every t (written)
// gates  (T*B, 4H)               tape: activated i, f, g, o (written)
// cells  (T*B, H)                tape: c_t (written)
// The final state is the row block of y and cells at time_at(T-1).
template <typename Scalar>
void lstm_forward(const SequenceShape& s, const Scalar* x, const GatedWeights<Scalar>& w,
                  const Scalar* h0, const Scalar* c0, SequenceView<Scalar> y, Scalar* gates,
                  Scalar* cells) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 4 * H, rows = s.rows();
  const auto x_all = view(x, rows, I, I);
  const auto weight_ih = view(w.weight_ih, G, I, I);
  const auto weight_hh = view(w.weight_hh, G, H, H);
  const ConstArrayView<Scalar> bias_ih(w.bias_ih, G), bias_hh(w.bias_hh, G);
  auto gates_all = view(gates, rows, G, G);
  const int threads = plan_threads(B, H, 4);

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int thread = omp_get_thread_num();
    const int team = omp_get_num_threads();

    // Hoisted input projection, this thread's rows of all T*B.
    const Range rows_mine = split_range(rows, thread, team, 1);
    if (rows_mine.size() > 0) {
      auto block = gates_all.middleRows(rows_mine.begin, rows_mine.size());
      block.noalias() = x_all.middleRows(rows_mine.begin, rows_mine.size()) * weight_ih.transpose();
      block.array().rowwise() += (bias_ih + bias_hh).transpose();
    }
#pragma omp barrier

    const Range units = split_range(H, thread, team, kUnitAlign);
    const Index n = units.size();
    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Scalar* h_prev = step == 0 ? h0 : y.row(s.previous_time(t), B);
      const Index h_prev_stride = step == 0 ? H : y.stride;
      const Scalar* c_prev = step == 0 ? c0 : cells + s.previous_time(t) * B * H;
      Scalar* gates_t = gates + t * B * G;
      Scalar* h_t = y.row(t, B);
      Scalar* c_t = cells + t * B * H;
      if (n > 0) {
        const auto h_prev_all = view(h_prev, B, H, h_prev_stride);
        auto gates_now = view(gates_t, B, G, G);
        for (Index gate = 0; gate < 4; ++gate) {
          gates_now.middleCols(gate * H + units.begin, n).noalias() +=
              h_prev_all * weight_hh.middleRows(gate * H + units.begin, n).transpose();
        }
        for (Index b = 0; b < B; ++b) {
          Scalar* a = gates_t + b * G + units.begin;
          ArrayView<Scalar> i(a, n), f(a + H, n), g(a + 2 * H, n), o(a + 3 * H, n);
          ConstArrayView<Scalar> c_before(c_prev + b * H + units.begin, n);
          ArrayView<Scalar> c_after(c_t + b * H + units.begin, n);
          ArrayView<Scalar> h_after(h_t + b * y.stride + units.begin, n);
          i = gate_sigmoid(i);
          f = gate_sigmoid(f);
          g = gate_tanh(g);
          o = gate_sigmoid(o);
          c_after = f * c_before + i * g;
          h_after = o * gate_tanh(c_after);
        }
      }
#pragma omp barrier
    }
  }
}

// Inputs as for lstm_forward, plus
// dy          (T*B, H), row stride dy.stride: gradient of y
// dh_n, dc_n  (B, H) gradient of the final state, or nullptr for zero
// Outputs:
// dx          (T*B, I): gradient of x, ADDED to (a bidirectional layer sums both directions)
// grads       gradients of the weights, ADDED to
// dh0, dc0    (B, H): gradient of the initial state (written)
template <typename Scalar>
void lstm_backward(const SequenceShape& s, const Scalar* x, const GatedWeights<Scalar>& w,
                   const Scalar* h0, const Scalar* c0, SequenceView<const Scalar> y,
                   const Scalar* gates, const Scalar* cells, SequenceView<const Scalar> dy,
                   const Scalar* dh_n, const Scalar* dc_n, Scalar* dx,
                   const GatedGrads<Scalar>& grads, Scalar* dh0, Scalar* dc0) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 4 * H, rows = s.rows();
  const auto x_all = view(x, rows, I, I);
  const auto weight_ih = view(w.weight_ih, G, I, I);
  const auto weight_hh = view(w.weight_hh, G, H, H);
  // (T*B, 4H): gradient of the gate pre-activations a_t, kept for the weight GEMMs.
  std::vector<Scalar> d_gates_buffer(static_cast<size_t>(rows * G));
  Scalar* d_gates = d_gates_buffer.data();
  // dh0 and dc0 double as the running gradients of h_t and c_t.
  auto dh = view(dh0, B, H, H);
  auto dc = view(dc0, B, H, H);
  if (dh_n) dh = view(dh_n, B, H, H); else dh.setZero();
  if (dc_n) dc = view(dc_n, B, H, H); else dc.setZero();
  const int threads = plan_threads(B, H, 4);

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int thread = omp_get_thread_num();
    const int team = omp_get_num_threads();
    const Range units = split_range(H, thread, team, kUnitAlign);
    const Index n = units.size();
    // Per-thread scratch of n values each, sized once, outside the time loop.
    std::vector<Scalar> scratch(static_cast<size_t>(3 * n));
    ArrayView<Scalar> tanh_c(scratch.data(), n), dh_total(scratch.data() + n, n),
        dc_total(scratch.data() + 2 * n, n);

    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      const Scalar* c_prev = step == 0 ? c0 : cells + s.previous_time(t) * B * H;
      const Scalar* gates_t = gates + t * B * G;
      const Scalar* c_t = cells + t * B * H;
      const Scalar* dy_t = dy.row(t, B);
      Scalar* d_gates_t = d_gates + t * B * G;
      for (Index b = 0; b < B && n > 0; ++b) {
        const Scalar* a = gates_t + b * G + units.begin;
        ConstArrayView<Scalar> i(a, n), f(a + H, n), g(a + 2 * H, n), o(a + 3 * H, n);
        ConstArrayView<Scalar> c_before(c_prev + b * H + units.begin, n);
        ConstArrayView<Scalar> c_after(c_t + b * H + units.begin, n);
        ConstArrayView<Scalar> dy_b(dy_t + b * dy.stride + units.begin, n);
        ArrayView<Scalar> dh_b(dh0 + b * H + units.begin, n);
        ArrayView<Scalar> dc_b(dc0 + b * H + units.begin, n);
        Scalar* da = d_gates_t + b * G + units.begin;
        ArrayView<Scalar> da_i(da, n), da_f(da + H, n), da_g(da + 2 * H, n), da_o(da + 3 * H, n);

        tanh_c = gate_tanh(c_after);
        dh_total = dy_b + dh_b;
        dc_total = dc_b + dh_total * o * (Scalar(1) - tanh_c.square());
        da_i = dc_total * g * i * (Scalar(1) - i);
        da_f = dc_total * c_before * f * (Scalar(1) - f);
        da_g = dc_total * i * (Scalar(1) - g.square());
        da_o = dh_total * tanh_c * o * (Scalar(1) - o);
        dc_b = dc_total * f;
      }
#pragma omp barrier
      // dh_{t-1} for this thread's units needs every unit's gate gradients of step t;
      // the next step reads only the units this thread writes, so no second barrier.
      if (n > 0) {
        dh.middleCols(units.begin, n).noalias() =
            view(d_gates_t, B, G, G) * weight_hh.middleCols(units.begin, n);
      }
    }
#pragma omp barrier

    // Weight and input gradients as GEMMs over all steps, split by output rows.
    const auto d_gates_all = view(static_cast<const Scalar*>(d_gates), rows, G, G);
    const Range gate_rows = split_range(G, thread, team, kUnitAlign);
    if (gate_rows.size() > 0) {
      const Index r0 = gate_rows.begin, nr = gate_rows.size();
      const auto d_gates_mine = d_gates_all.middleCols(r0, nr);
      view(grads.weight_ih, G, I, I).middleRows(r0, nr).noalias() +=
          d_gates_mine.transpose() * x_all;
      // h_{t-1} for the first processed time is h0; for the others it is the row block
      // of y one step earlier in processing order, so the pairs (dG_t, h_{t-1}) are
      // two aligned row ranges of d_gates and y.
      auto d_weight_hh = view(grads.weight_hh, G, H, H).middleRows(r0, nr);
      const Index first = s.time_at(0);
      d_weight_hh.noalias() +=
          d_gates_mine.middleRows(first * B, B).transpose() * view(h0, B, H, H);
      if (s.steps > 1) {
        const Index later_rows = (s.steps - 1) * B;
        const Index d_start = s.reverse ? 0 : B;       // times whose h_{t-1} is in y
        const Index h_start = s.reverse ? B : 0;
        d_weight_hh.noalias() += d_gates_mine.middleRows(d_start, later_rows).transpose() *
                                 view(y.data, rows, H, y.stride).middleRows(h_start, later_rows);
      }
      const auto bias_grad = d_gates_mine.colwise().sum().transpose().array().eval();
      ArrayView<Scalar>(grads.bias_ih + r0, nr) += bias_grad;
      ArrayView<Scalar>(grads.bias_hh + r0, nr) += bias_grad;
    }
    const Range rows_mine = split_range(rows, thread, team, 1);
    if (rows_mine.size() > 0) {
      view(dx, rows, I, I).middleRows(rows_mine.begin, rows_mine.size()).noalias() +=
          d_gates_all.middleRows(rows_mine.begin, rows_mine.size()) * weight_ih;
    }
  }
}

}  // namespace lstmcore
