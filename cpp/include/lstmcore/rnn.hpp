// The vanilla (Elman) RNN, one layer and one direction, forward and backward through time.
//
// PyTorch's nn.RNN, one gate block of H rows:
//   h_t = act(x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),   act = tanh or relu
// and ONNX's RNN: act any activation of chosen_activation.hpp, after its clip.
//
// Organised as gru.hpp, with one difference: act'(a) of tanh and relu is a function of
// h_t = act(a) alone (1 - h^2, h > 0), so backward needs nothing but y and the pass keeps
// no tape. The input projection therefore goes straight into y, a chunk of steps ahead;
// each step adds the recurrent product there and applies act in place.
#pragma once

#include <algorithm>
#include <vector>

#include "lstmcore/activations.hpp"
#include "lstmcore/chosen_activation.hpp"
#include "lstmcore/gate_sums.hpp"
#include "lstmcore/gate_weight_grads.hpp"
#include "lstmcore/input_gradient.hpp"
#include "lstmcore/interleaved_projection.hpp"
#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/team.hpp"
#include "lstmcore/threading.hpp"
#include "lstmcore/time_loop.hpp"

namespace lstmcore {

// The nonlinearities, chosen at compile time so that the fused loops hold no branch:
// apply(a) = act(a); gradient(h, dh) = dh * act'(a) for h = act(a).
struct TanhNonlinearity {
  static constexpr bool kChosen = false;
  template <typename P>
  static EIGEN_ALWAYS_INLINE P apply(const P& a) {
    return gate_tanh(a);
  }
  template <typename P>
  static EIGEN_ALWAYS_INLINE P gradient(const P& h, const P& dh) {
    using namespace Eigen::internal;
    return pmul(dh, psub(pset1<P>(1), pmul(h, h)));
  }
};

struct ReluNonlinearity {
  static constexpr bool kChosen = false;
  template <typename P>
  static EIGEN_ALWAYS_INLINE P apply(const P& a) {
    return gate_relu(a);
  }
  // relu'(0) = 0, as PyTorch's: a unit at zero passes no gradient.
  template <typename P>
  static EIGEN_ALWAYS_INLINE P gradient(const P& h, const P& dh) {
    if constexpr (std::is_floating_point_v<P>) {
      return h > P(0) ? dh : P(0);
    } else {
      using namespace Eigen::internal;
      return pselect(pcmp_lt(pzero(h), h), dh, pzero(dh));
    }
  }
};

// ONNX's RNN: an activation and clip chosen at run time, a value at a time. Its backward
// reads each a from a tape (T*B, H) rather than deriving act'(a) from h_t as the fixed
// ones do: the clip's zero gradient cannot be told from h_t (act(c) is also the value at
// a = c, where the gradient is not zero), and softsign's slope derived from h_t,
// (1 - |h|)^2, loses its digits as |h| nears 1. One path for every choice, and the tape
// costs only the layers that ask for these options.
template <typename Scalar>
class ChosenNonlinearity {
 public:
  static constexpr bool kChosen = true;

  ChosenNonlinearity(const Activation& act, double clip) : act_(act), clip_(clip) {}

  // One row of n units: h holds a without its bias (written: act(clip(a))); a written to
  // `tape` (n values) unless it is nullptr (inference).
  void forward(Index n, const Scalar* bias, Scalar* h, Scalar* tape) const {
    for (Index j = 0; j < n; ++j) {
      const Scalar a = h[j] + bias[j];
      if (tape) tape[j] = a;
      h[j] = activate_clipped(act_, a, clip_).value;
    }
  }

  // dh * act'(a), zero where the clip held a.
  Scalar gradient(Scalar a, Scalar dh) const { return dh * activate_clipped(act_, a, clip_).slope; }

 private:
  Activation act_;
  double clip_;
};

// x      (T, B, I)        input, in either layout (SequenceView)
// h0     (B, H)           initial state
// y      (T, B, H)        h_t for every t (written); the final state is the row block of y
//                         at time_at(T-1)
// Nonlinearity: TanhNonlinearity, ReluNonlinearity, or a ChosenNonlinearity (`act`)
// writing each a to `a_tape` (T*B, H) when that is not nullptr.
// packed: W_ih and W_hh packed once for every pass (a prepared layer), or nullptr: the
// pass packs them.
template <typename Scalar, typename Nonlinearity>
void rnn_forward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                 const Scalar* h0, SequenceView<Scalar> y, const Nonlinearity& act = {}, Scalar* a_tape = nullptr,
                 const PackedGateWeights<Scalar>* packed = nullptr) {
  const Index B = s.batch, H = s.hidden, I = s.input;
  const PassPlan plan = plan_pass(s, 1, sizeof(Scalar), Pass::forward);
  // Only the chunk schedule: the projection's rows are y's own (width 0: no buffer).
  const ProjectionChunks<Scalar> chunks(s, 0, nullptr, plan.rows_per_thread(B));
  // At batch 1 the input projection runs inside the steps' products (interleaved_projection.hpp),
  // into rows of its own: y's rows of the next chunk are not h yet.
  const bool interleaved = interleaves_projection<Scalar>(s, 1, plan.threads, a_tape != nullptr, false);
  const InterleavedRows<Scalar> interleaved_rows(H, interleaved);

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const PassPart part = pass_part(plan, s, thread, team, PanelLayout<Scalar>::kWidth);
    const Range units = part.units, rows = part.rows;
    const Index n = units.size(), r0 = rows.begin;
    const bool unpacked = s.rows() <= kUnpackedRows;
    const GatePanels<Scalar> panels(w, 1, H, I, H, units, !unpacked, packed);
    PackedBuffer<Scalar> bias(units.size());  // (n,) b_ih + b_hh
    fused_gate_bias(w, 1, 1, H, units, bias.data());
    ProductWorkspace<Scalar> workspace;
    PreviousState<Scalar> h_before(s, H);
    InterleavedProjection<Scalar> mixed(s, x, interleaved_rows, 1, units, panels, interleaved && n > 0);
    if (interleaved && n > 0) mixed.project_first_chunk(workspace);

    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      const StateRows<Scalar> h_prev =
          h_before.at(step, {h0, H}, {y.at(s.time_before(step), 0), y.batch_stride}, {r0, live_end});
      // x W_ih^T into this thread's rows and units of y for the chunk's steps; a later
      // chunk's times, so no thread reads them before its own step writes them.
      if (chunks.starts(step) && n > 0 && rows.size() > 0 && !unpacked && !interleaved) {
        const Index first = chunks.first_time(step);
        OutputRows<Scalar> out = y.output_rows(first, B, rows);
        out.data += units.begin;
        packed_products<Scalar>(x.rows(first, B, rows), chunks.steps(step) * rows.size(), I, panels.ih(),
                                panels.ih_size(), n, out, 0, 1, false, workspace, lone_row_of(s.batch));
      }
      Scalar* h_t = y.at(t, 0);
      if (n > 0 && live > 0) {
        Scalar* pre = h_t + r0 * y.batch_stride + units.begin;  // pre-activations in, h_t out
        if (unpacked) {
          multiply_unpacked<Scalar>({x.at(t, r0), x.batch_stride}, live, I, w.weight_ih + units.begin * I, I, n,
                                    pre, y.batch_stride, false);
          multiply_unpacked<Scalar>(h_prev.rows(r0), live, H, w.weight_hh + units.begin * H, H, n, pre,
                                    y.batch_stride, true);
        } else if (interleaved) {
          mixed.step(step, h_prev.row(r0), workspace);
          std::copy_n(interleaved_rows.row(step) + units.begin, n, pre);
        } else {
          multiply_rows<Scalar>(h_prev.rows(r0), live, H, panels.hh(0), n, pre, y.batch_stride, true,
                                lone_row_of(s.batch), panel_order_of(step));
        }
        for (Index b = r0; b < live_end; ++b) {
          Scalar* h = h_t + b * y.batch_stride + units.begin;
          const Scalar* bias_of = bias.data();
          if constexpr (Nonlinearity::kChosen) {
            act.forward(n, bias_of, h, a_tape ? a_tape + (t * B + b) * H + units.begin : nullptr);
          } else {
            for_each_unit<Scalar>(n, [&](Index j, auto p) {
              using namespace Eigen::internal;
              using P = decltype(p);
              pstoreu(h + j, Nonlinearity::apply(padd(ploadu<P>(h + j), ploadu<P>(bias_of + j))));
            });
          }
        }
      }
      if constexpr (Nonlinearity::kChosen) {
        zero_padding_rows<Scalar>({live_end, rows.end}, units,
                                  {{h_t, y.batch_stride}, {a_tape ? a_tape + t * B * H : nullptr, H}});
      } else {
        zero_padding_rows<Scalar>({live_end, rows.end}, units, {{h_t, y.batch_stride}});
      }
      // Over units, the next step reads every thread's h_t.
      if (!plan.by_batch) barrier.wait(team);
    }
  });
}

// Inputs as for rnn_forward (y as it wrote it), plus
// dy     (T, B, H): gradient of y
// dh_n   (B, H) gradient of the final state, or nullptr for zero
// Outputs:
// dx     (T, B, I): gradient of x, written, or ADDED to when accumulate_dx
// grads  gradients of the weights, ADDED to
// dh0    (B, H): gradient of the initial state (written)
// hidden_grads (T, B, H) time-major: dL/dh_t at every step (written), or nullptr
// A ChosenNonlinearity's backward reads a from `a_tape` (T*B, H), as its forward wrote it.
template <typename Scalar, typename Nonlinearity>
void rnn_backward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                  const Scalar* h0, SequenceView<const Scalar> y, SequenceView<const Scalar> dy, const Scalar* dh_n,
                  SequenceView<Scalar> dx, bool accumulate_dx, const GatedGrads<Scalar>& grads, Scalar* dh0,
                  Scalar* hidden_grads, const Nonlinearity& act = {}, const Scalar* a_tape = nullptr) {
  const Index B = s.batch, H = s.hidden, I = s.input;
  // (T*B, H): the gradient of the pre-activation, which is both the input side's and the
  // recurrent side's (one da, as the LSTM's).
  PassBuffer<Scalar> d_pre_buffer(s.rows() * H);
  Scalar* d_pre = d_pre_buffer.data();
  start_running_gradient(dh0, dh_n, B, H);
  const PassPlan plan = plan_pass(s, 1, sizeof(Scalar), Pass::backward);

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const PassPart part = pass_part(plan, s, thread, team, PanelLayout<Scalar>::kWidth);
    const Range units = part.units, rows_of_part = part.rows;
    const Index n = units.size(), r0 = rows_of_part.begin;
    const PackedBuffer<Scalar> packed_hh = recurrent_columns(w.weight_hh, H, H, units);
    const InputGradient<Scalar> input_gradient(w.weight_ih, H, I, part.inputs);
    ProductWorkspace<Scalar> workspace;
    // This thread's share of the bias gradient (both biases get the same), summed while
    // da is in registers (gate_sums.hpp).
    std::vector<Scalar> bias_grad(n, Scalar(0));
    const GateSums<Scalar> sums(bias_grad.data(), n);

    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      Scalar* d_pre_t = d_pre + t * B * H;
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      record_hidden_gradient<Scalar>(hidden_grads, t, B, H, rows_of_part, live_end, units, dy, dh0);
      for (Index b = r0; b < live_end && n > 0; ++b) {
        const Scalar* h = y.at(t, b) + units.begin;
        const Scalar* dy_b = dy.at(t, b) + units.begin;
        const Scalar* dh_b = dh0 + b * H + units.begin;
        Scalar* da = d_pre_t + b * H + units.begin;
        if constexpr (Nonlinearity::kChosen) {
          const Scalar* a = a_tape + (t * B + b) * H + units.begin;
          for (Index j = 0; j < n; ++j) sums.write(da, H, j, act.gradient(a[j], dy_b[j] + dh_b[j]));
        } else {
          for_each_unit<Scalar>(n, [&](Index j, auto p) {
            using namespace Eigen::internal;
            using P = decltype(p);
            const P dh_total = padd(ploadu<P>(dy_b + j), ploadu<P>(dh_b + j));
            sums.write(da, H, j, Nonlinearity::gradient(ploadu<P>(h + j), dh_total));
          });
        }
      }
      // A padding row has no gradient and keeps dh_n until its last step.
      zero_padding_rows<Scalar>({live_end, rows_of_part.end}, units, {{d_pre_t, H}});
      // Over units, this thread's units of dh_{t-1} need all of step t's da.
      if (!plan.by_batch) barrier.wait(team);
      // dh_{t-1} = da_t W_hh: no direct path from h_{t-1} to h_t, so written, not added.
      if (n > 0 && live > 0) {
        multiply_rows<Scalar>({d_pre_t + r0 * H, H}, live, H, packed_hh.data(), n, dh0 + r0 * H + units.begin, H,
                              false, LoneRow::split, panel_order_of(step));
      }
      input_gradient.step({d_pre_t + r0 * H, H}, rows_of_part, live_end, dx, t, accumulate_dx);
    }
    barrier.wait(team);
    input_gradient.after_loop(d_pre, s, rows_of_part, dx, accumulate_dx, workspace);

    // Weight gradients as products over all steps, split by output rows; one da, so both
    // products share each packed block of da^T.
    const Range gate_rows = split_range(H, thread, team, PanelLayout<Scalar>::kRows);
    if (gate_rows.size() > 0) {
      add_gate_weight_grads(s, d_pre, d_pre, H, gate_rows.begin, gate_rows.size(), x, h0, y, H, grads.weight_ih,
                            grads.weight_hh, workspace);
    }
    in_thread_order(thread, team, barrier, [&] {
      add_bias_share(bias_grad.data(), 1, H, units, grads.bias_ih);
      add_bias_share(bias_grad.data(), 1, H, units, grads.bias_hh);
    });
  });
}

}  // namespace lstmcore
