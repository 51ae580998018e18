// GRU, one layer and one direction, forward and backward through time.
//
// PyTorch's formulation, gates in the order r, z, n; the reset gate multiplies the
// recurrent part of n after its bias:
//   r = gate_sigmoid(x W_ir^T + b_ir + h_{t-1} W_hr^T + b_hr)
//   z = gate_sigmoid(x W_iz^T + b_iz + h_{t-1} W_hz^T + b_hz)
//   m = h_{t-1} W_hn^T + b_hn
//   n = gate_tanh(x W_in^T + b_in + r * m)
//   h_t = (1 - z) * n + z * h_{t-1}
// With ResetAfter false, the original GRU of Cho et al. (ONNX's default,
// linear_before_reset = 0): the reset gate multiplies h_{t-1} before W_hn, so
//   n = gate_tanh(x W_in^T + b_in + (r * h_{t-1}) W_hn^T + b_hn)
// and a step's recurrent product comes in two: r and z first, then W_hn over r * h_{t-1},
// which needs every unit's r (one more barrier per step when split over units).
//
// Organised as lstm_sequence.hpp (variable lengths, in either direction, included): the input GEMM a chunk of
// steps ahead, a per-step recurrent product for this thread's units and one fused
// element-wise pass; backward's step computes dh_{t-1} and dx_t, the weight-gradient GEMMs
// run after the loop.
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

// The GRU's element-wise part sees its activations through one of two policies. The
// default, sigmoid r, z and tanh n a SIMD packet at a time, keeps the gates' values on the
// tape; GeneralGruActivations (chosen at run time with ONNX's clip, chosen_activation.hpp)
// a value at a time, keeps their pre-activations there and recomputes the values and
// slopes in backward. gate_at and candidate_at read a tape entry back.
struct DefaultGruActivations {
  template <typename Scalar, typename Body>
  EIGEN_ALWAYS_INLINE void each(Index n, Body&& body) const {
    for_each_unit<Scalar>(n, body);
  }
  template <typename P>
  EIGEN_ALWAYS_INLINE P gate(const P& a) const {
    return gate_sigmoid(a);
  }
  template <typename P>
  EIGEN_ALWAYS_INLINE P candidate(const P& a) const {
    return gate_tanh(a);
  }
  template <typename P>
  EIGEN_ALWAYS_INLINE P kept(const P& /*pre*/, const P& value) const {
    return value;
  }
  template <typename P>
  EIGEN_ALWAYS_INLINE void gate_at(const P& kept, P& value, P& slope) const {
    using namespace Eigen::internal;
    using Scalar = typename unpacket_traits<P>::type;
    value = kept;
    slope = pmul(kept, psub(pset1<P>(Scalar(1)), kept));
  }
  template <typename P>
  EIGEN_ALWAYS_INLINE void candidate_at(const P& kept, P& value, P& slope) const {
    using namespace Eigen::internal;
    using Scalar = typename unpacket_traits<P>::type;
    value = kept;
    slope = psub(pset1<P>(Scalar(1)), pmul(kept, kept));
  }
};

struct GeneralGruActivations {
  CellActivations acts;
  template <typename Scalar, typename Body>
  void each(Index n, Body&& body) const {
    for (Index j = 0; j < n; ++j) body(j, Scalar{});
  }
  template <typename Scalar>
  Scalar gate(Scalar a) const {
    return activate_clipped(acts.gate, a, acts.clip).value;
  }
  template <typename Scalar>
  Scalar candidate(Scalar a) const {
    return activate_clipped(acts.candidate, a, acts.clip).value;
  }
  template <typename Scalar>
  Scalar kept(Scalar pre, Scalar /*value*/) const {
    return pre;
  }
  template <typename Scalar>
  void gate_at(Scalar kept, Scalar& value, Scalar& slope) const {
    const Activated<Scalar> r = activate_clipped(acts.gate, kept, acts.clip);
    value = r.value;
    slope = r.slope;
  }
  template <typename Scalar>
  void candidate_at(Scalar kept, Scalar& value, Scalar& slope) const {
    const Activated<Scalar> r = activate_clipped(acts.candidate, kept, acts.clip);
    value = r.value;
    slope = r.slope;
  }
};

// Width of a GRU tape row: r, z, n and m (ResetAfter) or r * h_{t-1} (not), H each.
inline Index gru_tape_width(Index hidden) { return 4 * hidden; }

// x      (T, B, I)        input, in either layout (SequenceView)
// h0     (B, H)           initial state
// y      (T, B, H)        h_t for every t (written)
// gates  (T*B, 4H)        tape: r, z, n (as Acts keeps them) and m = h_{t-1} W_hn^T + b_hn
//                         (ResetAfter) or r * h_{t-1} (not) (written), or nullptr
// packed                  W_ih and W_hh packed once for every pass (a prepared layer), or
//                         nullptr: the pass packs them
// The final state is the row block of y at time_at(T-1).
// The input projection is computed a chunk of steps ahead (kChunkRows), into the tape or,
// without one (inference), into a chunk buffer reused chunk after chunk; the fourth
// column block is written there too, since reset-before's second product reads r * h_{t-1}
// of every thread's units from it. At batch 1 without a tape, reset-after projects inside
// the steps instead (interleaved_projection.hpp), into rows of the same layout.
template <typename Scalar, bool ResetAfter = true, typename Acts = DefaultGruActivations>
void gru_forward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                 const Scalar* h0, SequenceView<Scalar> y, Scalar* gates, const Acts& acts = {},
                 const PackedGateWeights<Scalar>* packed = nullptr) {
  const Index B = s.batch, H = s.hidden, I = s.input, W = gru_tape_width(H);
  using Layout = PanelLayout<Scalar>;
  const PassPlan plan = plan_pass(s, 3, sizeof(Scalar), Pass::forward);
  const bool taped = gates != nullptr;
  // At batch 1 the input projection runs inside the steps' products (interleaved_projection.hpp);
  // reset-before's n product waits for r, so it does not.
  const bool interleaved = ResetAfter && interleaves_projection<Scalar>(s, 3, plan.threads, taped, false);
  const ProjectionChunks<Scalar> projection(s, W, gates, plan.rows_per_thread(B), !interleaved);
  const InterleavedRows<Scalar> interleaved_rows(W, interleaved);

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const PassPart part = pass_part(plan, s, thread, team, Layout::kWidth);
    const Range units = part.units, rows = part.rows;
    const Index n = units.size(), r0 = rows.begin;

    // This thread's rows of W_ih and W_hh, packed once. The input-side bias of every gate
    // and the recurrent bias of r and z add to the pre-activation; b_hn stays inside r * m
    // (ResetAfter) or adds to n's too (not).
    // A pass of a row or two (a streaming step) reads W in place instead (multiply_unpacked).
    const bool unpacked = s.rows() <= kUnpackedRows;
    const GatePanels<Scalar> panels(w, 3, H, I, H, units, !unpacked, packed);
    // (4, n): the pre-activation biases of r, z, n, then b_hn.
    PackedBuffer<Scalar> bias(4 * units.size());
    fused_gate_bias(w, 3, ResetAfter ? 2 : 3, H, units, bias.data());
    std::copy(w.bias_hh + 2 * H + units.begin, w.bias_hh + 2 * H + units.end, bias.data() + 3 * units.size());
    ProductWorkspace<Scalar> workspace;
    PreviousState<Scalar> h_before(s, H);
    // The cell scales m = h_{t-1} W_hn^T by r, so it cannot share n's block with n's projection.
    InterleavedProjection<Scalar> mixed(s, x, interleaved_rows, 3, units, panels, interleaved && n > 0,
                                        RecurrentApart{2});
    if (interleaved && n > 0) mixed.project_first_chunk(workspace);
    // Reset-before's step on the rows [r0, r0 + live) at time t: r, z and r * h_{t-1}, then
    // n and h_t. Every thread reaches the barrier between them, with work or without.
    const auto reset_before_step = [&](Index step, Index t, Index live, const StateRows<Scalar>& h_prev,
                                       Scalar* tape_t, Scalar* h_t) {
      const bool work = n > 0 && live > 0;
      const RowView<Scalar> h_rows = h_prev.rows(r0);
      // Every other step takes r and z, then n, last to first (PanelOrder): n must wait
      // for r, but within each product a step starts on the panels the one before read last.
      const PanelOrder order = panel_order_of(step);
      for (Index i = 0; i < 3 && work; ++i) {
        const Index gate = in_order(i, 3, order);
        if (unpacked) {
          const Index row = gate * H + units.begin;
          multiply_unpacked<Scalar>({x.at(t, r0), x.batch_stride}, live, I, w.weight_ih + row * I, I, n,
                                    tape_t + r0 * W + gate * H + units.begin, W, false);
          if (gate < 2) {
            multiply_unpacked<Scalar>(h_rows, live, H, w.weight_hh + row * H, H, n,
                                      tape_t + r0 * W + gate * H + units.begin, W, true);
          }
        } else if (gate < 2) {
          multiply_rows<Scalar>(h_rows, live, H, panels.hh(gate), n, tape_t + r0 * W + gate * H + units.begin, W,
                                true, lone_row_of(s.batch), order);
        }
      }
      for (Index b = r0; b < r0 + live && work; ++b) {
        Scalar* tape = tape_t + b * W + units.begin;
        const Scalar* h_old = h_prev.row(b) + units.begin;
        const Scalar* bias_of = bias.data();
        acts.template each<Scalar>(n, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P a_r = padd(ploadu<P>(tape + j), ploadu<P>(bias_of + j));
          const P a_z = padd(ploadu<P>(tape + H + j), ploadu<P>(bias_of + n + j));
          const P r = acts.gate(a_r);
          pstoreu(tape + j, acts.kept(a_r, r));
          pstoreu(tape + H + j, acts.kept(a_z, acts.gate(a_z)));
          pstoreu(tape + 3 * H + j, pmul(r, ploadu<P>(h_old + j)));
        });
      }
      // Over units, n's product reads every thread's r * h_{t-1}.
      if (!plan.by_batch) barrier.wait(team);
      if (!work) return;
      const RowView<Scalar> reset_rows{tape_t + r0 * W + 3 * H, W};
      Scalar* n_pre = tape_t + r0 * W + 2 * H + units.begin;
      if (unpacked) {
        multiply_unpacked<Scalar>(reset_rows, live, H, w.weight_hh + (2 * H + units.begin) * H, H, n, n_pre, W,
                                  true);
      } else {
        multiply_rows<Scalar>(reset_rows, live, H, panels.hh(2), n, n_pre, W, true, lone_row_of(s.batch), order);
      }
      for (Index b = r0; b < r0 + live; ++b) {
        Scalar* tape = tape_t + b * W + units.begin;
        const Scalar* h_old = h_prev.row(b) + units.begin;
        Scalar* h_after = h_t + b * y.batch_stride + units.begin;
        const Scalar* bias_n = bias.data() + 2 * n;
        acts.template each<Scalar>(n, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P a_n = padd(ploadu<P>(tape + 2 * H + j), ploadu<P>(bias_n + j));
          const P cand = acts.candidate(a_n);
          P z, z_slope;
          acts.gate_at(ploadu<P>(tape + H + j), z, z_slope);
          pstoreu(h_after + j, pmadd(z, psub(ploadu<P>(h_old + j), cand), cand));
          pstoreu(tape + 2 * H + j, acts.kept(a_n, cand));
        });
      }
    };

    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      // This part's rows [r0, live_end) hold real steps at time t, [live_end, rows.end) padding.
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      const StateRows<Scalar> h_prev =
          h_before.at(step, {h0, H}, {y.at(s.time_before(step), 0), y.batch_stride}, {r0, live_end});
      // The input projection into the r, z, n columns of this thread's units, a chunk of
      // steps at a time; this thread's columns and rows only, so it needs no barrier.
      if (projection.starts(step) && n > 0 && rows.size() > 0 && !unpacked && !interleaved) {
        packed_products<Scalar>(x.rows(projection.first_time(step), B, rows), projection.steps(step) * rows.size(),
                                I, panels.ih(), panels.ih_size(), n, projection.chunk_rows(step, rows, units.begin),
                                H, 3, false, workspace, lone_row_of(s.batch));
      }
      Scalar* tape_t = interleaved ? interleaved_rows.row(step) : projection.rows(step);
      Scalar* h_t = y.at(t, 0);
      if constexpr (!ResetAfter) {
        reset_before_step(step, t, live, h_prev, tape_t, h_t);
      } else if (n > 0 && live > 0) {
        // r and z add their recurrent part; m = h_{t-1} W_hn^T goes to its own column.
        const RowView<Scalar> h_rows = h_prev.rows(r0);
        if (interleaved) {
          mixed.step(step, h_prev.row(r0), workspace);
        } else {
          const PanelOrder order = panel_order_of(step);
          for (Index i = 0; i < 3; ++i) {
            const Index gate = in_order(i, 3, order);
            const Index column = (gate < 2 ? gate : 3) * H + units.begin;
            if (unpacked) {
              const Index row = gate * H + units.begin;
              multiply_unpacked<Scalar>({x.at(t, r0), x.batch_stride}, live, I, w.weight_ih + row * I, I, n,
                                        tape_t + r0 * W + gate * H + units.begin, W, false);
              multiply_unpacked<Scalar>(h_rows, live, H, w.weight_hh + row * H, H, n, tape_t + r0 * W + column, W,
                                        gate < 2);
              continue;
            }
            multiply_rows<Scalar>(h_rows, live, H, panels.hh(gate), n, tape_t + r0 * W + column, W, gate < 2,
                                  lone_row_of(s.batch), order);
          }
        }
        for (Index b = r0; b < live_end; ++b) {
          Scalar* tape = tape_t + b * W + units.begin;  // pre-activations in, gates out
          const Scalar* h_old = h_prev.row(b) + units.begin;
          Scalar* h_after = h_t + b * y.batch_stride + units.begin;
          const Scalar* bias_of = bias.data();
          acts.template each<Scalar>(n, [&](Index j, auto p) {
            using namespace Eigen::internal;
            using P = decltype(p);
            const P a_r = padd(ploadu<P>(tape + j), ploadu<P>(bias_of + j));
            const P a_z = padd(ploadu<P>(tape + H + j), ploadu<P>(bias_of + n + j));
            const P r = acts.gate(a_r), z = acts.gate(a_z);
            const P m = padd(ploadu<P>(tape + 3 * H + j), ploadu<P>(bias_of + 3 * n + j));
            const P pre_n = padd(ploadu<P>(tape + 2 * H + j), ploadu<P>(bias_of + 2 * n + j));
            const P a_n = pmadd(r, m, pre_n);
            const P cand = acts.candidate(a_n);
            // h = (1 - z) * n + z * h_prev = n + z * (h_prev - n)
            pstoreu(h_after + j, pmadd(z, psub(ploadu<P>(h_old + j), cand), cand));
            pstoreu(tape + j, acts.kept(a_r, r));
            pstoreu(tape + H + j, acts.kept(a_z, z));
            pstoreu(tape + 2 * H + j, acts.kept(a_n, cand));
            pstoreu(tape + 3 * H + j, m);
          });
        }
      }
      zero_padding_rows<Scalar>({live_end, rows.end}, units,
                                {{h_t, y.batch_stride}, {taped ? tape_t : nullptr, W, 4, H}});
      // As in lstm_forward: over units, the next step reads every thread's h_t.
      if (!plan.by_batch) barrier.wait(team);
    }
  });
}

// Inputs as for gru_forward, plus
// dy     (T, B, H): gradient of y
// dh_n   (B, H) gradient of the final state, or nullptr for zero
// Outputs:
// dx     (T, B, I): gradient of x, written, or ADDED to when accumulate_dx
// grads  gradients of the weights, ADDED to
// dh0    (B, H): gradient of the initial state (written)
// hidden_grads (T, B, H) time-major: dL/dh_t at every step (written), or nullptr
// ResetAfter and Acts must be the forward's.
template <typename Scalar, bool ResetAfter = true, typename Acts = DefaultGruActivations>
void gru_backward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                  const Scalar* h0, SequenceView<const Scalar> y, const Scalar* gates,
                  SequenceView<const Scalar> dy, const Scalar* dh_n, SequenceView<Scalar> dx, bool accumulate_dx,
                  const GatedGrads<Scalar>& grads, Scalar* dh0, Scalar* hidden_grads, const Acts& acts = {}) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 3 * H, W = gru_tape_width(H);
  const Index rows = s.rows();
  // (T*B, 3H) each: gradients of the input-side pre-activations (x W_i^T + b_i) and of
  // the recurrent-side ones (h W_h^T + b_h); they differ only in n, where r scales m.
  // Reset-before's sides are the same, and its d_hidden is instead one step's gradient of
  // r * h_{t-1}, (B, H).
  PassBuffer<Scalar> d_input_buffer(rows * G);
  PassBuffer<Scalar> d_hidden_buffer(ResetAfter ? rows * G : B * H);
  Scalar* d_input = d_input_buffer.data();
  Scalar* d_hidden = d_hidden_buffer.data();
  start_running_gradient(dh0, dh_n, B, H);
  const PassPlan plan = plan_pass(s, 3, sizeof(Scalar), Pass::backward);
  using Layout = PanelLayout<Scalar>;

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const PassPart part = pass_part(plan, s, thread, team, Layout::kWidth);
    const Range units = part.units, rows_of_part = part.rows;
    const Index n = units.size(), r0 = rows_of_part.begin;
    // This thread's columns of W_hh (all 3H rows), packed once for the step's
    // dh_{t-1} += da_hidden W_hh; and dx_t = da_input W_ih for its slice of the inputs (all
    // of them when the pass is split over the batch).
    // Reset-before packs W_hr and W_hz (2H rows) here and W_hn apart.
    const PackedBuffer<Scalar> packed_hh = recurrent_columns(w.weight_hh, ResetAfter ? G : 2 * H, H, units);
    const PackedBuffer<Scalar> packed_hn =
        ResetAfter ? PackedBuffer<Scalar>() : recurrent_columns(w.weight_hh + 2 * H * H, H, H, units);
    const InputGradient<Scalar> input_gradient(w.weight_ih, G, I, part.inputs);
    ProductWorkspace<Scalar> workspace;
    // This thread's shares of the bias gradients, summed while the gate gradients are in
    // registers (gate_sums.hpp): (3, n) of the input side's and (1, n) of the recurrent
    // n gate's (its r and z are the input side's); Eigen's column sums over both tapes
    // after the loop read them back from memory.
    std::vector<Scalar> input_bias_grad(3 * n, Scalar(0)), hidden_n_bias_grad(n, Scalar(0));
    const GateSums<Scalar> input_sums(input_bias_grad.data(), n), hidden_n_sums(hidden_n_bias_grad.data(), n);
    PreviousState<Scalar> h_before(s, H);
    // Reset-before's step on the rows [r0, live_end) at time t:
    //   da_n, da_z; (barrier) d(r h) = da_n W_hn; da_r = d(r h) * h_{t-1} * r (1 - r);
    //   dh_{t-1} = dh * z + d(r h) * r + (barrier) [da_r, da_z] [W_hr; W_hz]
    // Every thread reaches both barriers, with work or without.
    const auto reset_before_step = [&](Index step, Index t, Index live_end, const StateRows<Scalar>& h_prev) {
      const Scalar* tape_t = gates + t * B * W;
      Scalar* d_input_t = d_input + t * B * G;
      const Index live = live_end - r0;
      const GateSums<Scalar> r_sums(input_bias_grad.data(), n), zn_sums(input_bias_grad.data() + n, n);
      for (Index b = r0; b < live_end && n > 0; ++b) {
        const Scalar* tape = tape_t + b * W + units.begin;
        const Scalar* h_old = h_prev.row(b) + units.begin;
        const Scalar* dy_b = dy.at(t, b) + units.begin;
        Scalar* dh_b = dh0 + b * H + units.begin;
        Scalar* dxa = d_input_t + b * G + units.begin;
        acts.template each<Scalar>(n, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P one = pset1<P>(Scalar(1));
          P z, z_slope, cand, cand_slope;
          acts.gate_at(ploadu<P>(tape + H + j), z, z_slope);
          acts.candidate_at(ploadu<P>(tape + 2 * H + j), cand, cand_slope);
          const P dh_total = padd(ploadu<P>(dy_b + j), ploadu<P>(dh_b + j));
          const P da_n = pmul(pmul(dh_total, psub(one, z)), cand_slope);
          const P da_z = pmul(pmul(dh_total, psub(ploadu<P>(h_old + j), cand)), z_slope);
          zn_sums.write(dxa + H, H, j, da_z, da_n);
          pstoreu(dh_b + j, pmul(dh_total, z));
        });
      }
      // Over units, d(r h) of this thread's units needs every unit's da_n.
      if (!plan.by_batch) barrier.wait(team);
      if (n > 0 && live > 0) {
        multiply_rows<Scalar>({d_input_t + r0 * G + 2 * H, G}, live, H, packed_hn.data(), n,
                              d_hidden + r0 * H + units.begin, H, false, LoneRow::split, panel_order_of(step));
      }
      for (Index b = r0; b < live_end && n > 0; ++b) {
        const Scalar* r_of = tape_t + b * W + units.begin;
        const Scalar* h_old = h_prev.row(b) + units.begin;
        const Scalar* d_reset = d_hidden + b * H + units.begin;
        Scalar* dh_b = dh0 + b * H + units.begin;
        Scalar* dxa = d_input_t + b * G + units.begin;
        acts.template each<Scalar>(n, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          P r, r_slope;
          acts.gate_at(ploadu<P>(r_of + j), r, r_slope);
          const P d_rh = ploadu<P>(d_reset + j);
          const P da_r = pmul(pmul(d_rh, ploadu<P>(h_old + j)), r_slope);
          r_sums.write(dxa, H, j, da_r);
          pstoreu(dh_b + j, pmadd(d_rh, r, ploadu<P>(dh_b + j)));
        });
      }
      zero_padding_rows<Scalar>({live_end, rows_of_part.end}, units, {{d_input_t, G, 3, H}});
      // Over units, dh_{t-1} of this thread's units needs every unit's da_r and da_z.
      if (!plan.by_batch) barrier.wait(team);
      if (n > 0 && live > 0) {
        multiply_rows<Scalar>({d_input_t + r0 * G, G}, live, 2 * H, packed_hh.data(), n, dh0 + r0 * H + units.begin,
                              H, true, LoneRow::split, panel_order_of(step));
      }
      input_gradient.step({d_input_t + r0 * G, G}, rows_of_part, live_end, dx, t, accumulate_dx);
    };

    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      const StateRows<Scalar> h_prev =
          h_before.at(step, {h0, H}, {y.at(s.time_before(step), 0), y.batch_stride}, {r0, live_end});
      record_hidden_gradient<Scalar>(hidden_grads, t, B, H, rows_of_part, live_end, units, dy, dh0);
      if constexpr (!ResetAfter) {
        reset_before_step(step, t, live_end, h_prev);
        continue;
      }
      const Scalar* tape_t = gates + t * B * W;
      Scalar* d_input_t = d_input + t * B * G;
      Scalar* d_hidden_t = d_hidden + t * B * G;
      for (Index b = r0; b < live_end && n > 0; ++b) {
        const Scalar* tape = tape_t + b * W + units.begin;
        const Scalar* h_old = h_prev.row(b) + units.begin;
        const Scalar* dy_b = dy.at(t, b) + units.begin;
        Scalar* dh_b = dh0 + b * H + units.begin;
        Scalar* dxa = d_input_t + b * G + units.begin;
        Scalar* dha = d_hidden_t + b * G + units.begin;
        acts.template each<Scalar>(n, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P one = pset1<P>(Scalar(1));
          P r, r_slope, z, z_slope, cand, cand_slope;
          acts.gate_at(ploadu<P>(tape + j), r, r_slope);
          acts.gate_at(ploadu<P>(tape + H + j), z, z_slope);
          acts.candidate_at(ploadu<P>(tape + 2 * H + j), cand, cand_slope);
          const P m = ploadu<P>(tape + 3 * H + j);
          const P dh_total = padd(ploadu<P>(dy_b + j), ploadu<P>(dh_b + j));
          const P da_n = pmul(pmul(dh_total, psub(one, z)), cand_slope);
          const P da_r = pmul(pmul(da_n, m), r_slope);
          const P da_z = pmul(pmul(dh_total, psub(ploadu<P>(h_old + j), cand)), z_slope);
          input_sums.write(dxa, H, j, da_r, da_z, da_n);
          pstoreu(dha + j, da_r);
          pstoreu(dha + H + j, da_z);
          hidden_n_sums.write(dha + 2 * H, H, j, pmul(da_n, r));
          pstoreu(dh_b + j, pmul(dh_total, z));  // the direct path; the product adds below
        });
      }
      // A padding row has no gate gradients and keeps dh_n until its last step.
      zero_padding_rows<Scalar>({live_end, rows_of_part.end}, units, {{d_input_t, G, 3, H}, {d_hidden_t, G, 3, H}});
      // As in lstm_backward: over units, this thread's units of dh_{t-1} need all of step
      // t's gate gradients; the next step reads only the units written here.
      if (!plan.by_batch) barrier.wait(team);
      if (n > 0 && live > 0) {
        multiply_rows<Scalar>({d_hidden_t + r0 * G, G}, live, G, packed_hh.data(), n, dh0 + r0 * H + units.begin, H,
                              true, LoneRow::split, panel_order_of(step));
      }
      input_gradient.step({d_input_t + r0 * G, G}, rows_of_part, live_end, dx, t, accumulate_dx);
    }
    barrier.wait(team);
    input_gradient.after_loop(d_input, s, rows_of_part, dx, accumulate_dx, workspace);

    // Weight gradients as products over all steps, split by output rows.
    const Range gate_rows = split_range(G, thread, team, PanelLayout<Scalar>::kRows);
    if constexpr (!ResetAfter) {
      // dW_hn pairs da_n with r * h_{t-1}, which the tape holds at each step's own time.
      const Range rz_rows{gate_rows.begin, std::min(gate_rows.end, 2 * H)};
      const Range n_rows{std::max(gate_rows.begin, 2 * H), gate_rows.end};
      if (rz_rows.size() > 0) {
        add_gate_weight_grads(s, d_input, d_input, G, rz_rows.begin, rz_rows.size(), x, h0, y, H, grads.weight_ih,
                              grads.weight_hh, workspace);
      }
      if (n_rows.size() > 0) {
        const TransposedTarget<Scalar> to_ih{x.rows(0, B), I, grads.weight_ih + n_rows.begin * I, I};
        const TransposedTarget<Scalar> to_hh{{gates + 3 * H, W}, H, grads.weight_hh + n_rows.begin * H, H};
        transposed_products<Scalar>({d_input, G}, n_rows.begin, n_rows.size(), rows, {to_ih, to_hh}, true,
                                    workspace);
      }
      in_thread_order(thread, team, barrier, [&] {
        add_bias_share(input_bias_grad.data(), 3, H, units, grads.bias_ih);
        add_bias_share(input_bias_grad.data(), 3, H, units, grads.bias_hh);
      });
      return;
    }
    if (gate_rows.size() > 0) {
      const Index r0 = gate_rows.begin, nr = gate_rows.size();
      add_gate_weight_grads(s, d_input, d_hidden, G, r0, nr, x, h0, y, H, grads.weight_ih, grads.weight_hh,
                            workspace);
    }
    // r's and z's two biases add, so they share a gradient; n's recurrent one is inside r * m.
    in_thread_order(thread, team, barrier, [&] {
      add_bias_share(input_bias_grad.data(), 3, H, units, grads.bias_ih);
      add_bias_share(input_bias_grad.data(), 2, H, units, grads.bias_hh);
      add_bias_share(hidden_n_bias_grad.data(), 1, H, units, grads.bias_hh + 2 * H);
    });
  });
}

}  // namespace lstmcore
