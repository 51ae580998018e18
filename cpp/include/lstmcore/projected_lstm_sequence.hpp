// The projected LSTM (Sak et al. 2014; PyTorch's proj_size), one layer and one direction.
//
// The cell (any of lstm_sequence.hpp's cells) runs on H units, but the state it passes
// on is projected to P < H features:
//   r_t = o * tanh(c_t)                    (B, H)   the cell's own output
//   h_t = r_t W_hr^T                       (B, P)   W_hr (P, H)
//   a_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh,   W_hh (K*H, P)
//
// As lstm_sequence.hpp, plus a second product per step: threads own a slice of the H
// units for the gates and a slice of the P features for the projection, so a step has
// two barriers (the projection needs every unit's r_t, the next step every feature of
// h_t). Backward mirrors it: dh_t's features, then r_t's units, then dh_{t-1}'s features
// and dx_t's inputs. This kernel stays split over units at every batch size: split over
// the batch rows like the others (threading.hpp), its training step ran slower and its
// inference no faster.
#pragma once

#include <algorithm>
#include <vector>

#include "lstmcore/gate_weight_grads.hpp"
#include "lstmcore/input_gradient.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/team.hpp"
#include "lstmcore/threading.hpp"
#include "lstmcore/time_loop.hpp"

namespace lstmcore {

// s.hidden is H; `proj` is P.
// x (T, B, I) in either layout (SequenceView); h0 (B, P); c0 (B, H); weight_hr (P, H)
// y        (T, B, P): h_t (written)
// gates    (T*B, K*H), cells (T*B, H), cell_out (T*B, H): tape, r_t = o * tanh(c_t)
//          (written); or all three nullptr (inference: no tape)
// c_n      (B, H): each sequence's last c_t (written), or nullptr
// packed   W_ih and W_hh packed once for every pass (a prepared layer), or nullptr
// As lstm_forward, the input projection is computed a chunk of steps ahead (kChunkRows);
// without a tape it goes to a reused chunk buffer, c_t alternates between two buffers
// and r_t is one buffer (the second barrier of a step orders its reads before the next
// step's writes).
template <typename Scalar, template <typename> class Cell>
void projected_lstm_forward(const SequenceShape& s, Index proj, SequenceView<const Scalar> x,
                            const GatedWeights<Scalar>& w, const Scalar* weight_hr,
                            const LstmOptions<Scalar>& options, const Scalar* h0, const Scalar* c0,
                            SequenceView<Scalar> y, Scalar* gates, Scalar* cells, Scalar* cell_out, Scalar* c_n,
                            const PackedGateWeights<Scalar>* packed = nullptr) {
  constexpr Index K = Cell<Scalar>::kGates;
  const Index B = s.batch, H = s.hidden, P = proj, I = s.input, G = K * H;
  using Layout = PanelLayout<Scalar>;
  // The unit split only: a barrier a step, so one thread while the cores are busy.
  const int threads = adapt_to_busy_cores() ? 1 : plan_threads(B, H, K);
  const bool taped = gates != nullptr;
  const ProjectionChunks<Scalar> projection(s, G, gates, B);
  PassBuffer<Scalar> cell_pair(taped ? 0 : 2 * B * H);
  PassBuffer<Scalar> cell_out_row(taped ? 0 : B * H);

  run_team(threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const Range units = split_range(H, thread, team, Layout::kWidth);
    const Range features = split_range(P, thread, team, Layout::kWidth);
    const Index n = units.size(), m = features.size();

    const GatePanels<Scalar> panels(w, K, H, I, P, units, true, packed);
    PackedBuffer<Scalar> bias(K * n);
    fused_gate_bias(w, K, K, H, units, bias.data());
    PackedBuffer<Scalar> packed_hr(Layout::size(m, H));
    ProductWorkspace<Scalar> workspace;
    if (m > 0) pack_rows_as_columns(weight_hr + features.begin * H, H, m, H, packed_hr.data());
    const Cell<Scalar> cell(options, units, H, bias.data());
    PreviousState<Scalar> h_before(s, P), c_before(s, H);

    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Index alive = s.active(t);
      const Index t_before = s.time_before(step);
      const StateRows<Scalar> h_prev = h_before.at(step, {h0, P}, {y.at(t_before, 0), y.batch_stride}, {0, alive});
      if (projection.starts(step) && n > 0) {
        packed_products<Scalar>(x.rows(projection.first_time(step), B), projection.steps(step) * B, I, panels.ih(),
                                panels.ih_size(), n, projection.chunk_rows(step, {0, B}, units.begin), H, K, false,
                                workspace, lone_row_of(s.batch));
      }
      Scalar* gates_t = projection.rows(step);
      Scalar* c_t = taped ? cells + t * B * H : cell_pair.data() + (step & 1) * B * H;
      Scalar* r_t = taped ? cell_out + t * B * H : cell_out_row.data();
      const Scalar* c_later = taped ? cells + t_before * B * H : cell_pair.data() + ((step - 1) & 1) * B * H;
      const StateRows<Scalar> c_prev = c_before.at(step, {c0, H}, {c_later, H}, {0, alive});
      Scalar* h_t = y.at(t, 0);
      if (n > 0 && alive > 0) {
        const PanelOrder order = panel_order_of(step);
        for (Index i = 0; i < K; ++i) {
          const Index gate = in_order(i, K, order);
          multiply_rows<Scalar>(h_prev.rows(0), alive, P, panels.hh(gate), n, gates_t + gate * H + units.begin, G,
                                true, lone_row_of(s.batch), order);
        }
        for (Index b = 0; b < alive; ++b) {
          cell.forward(gates_t + b * G + units.begin, c_prev.row(b) + units.begin, c_t + b * H + units.begin,
                       r_t + b * H + units.begin);
        }
        for (Index b = s.active_after(step); b < alive && c_n; ++b) {
          std::copy_n(c_t + b * H + units.begin, n, c_n + b * H + units.begin);
        }
      }
      if (taped) zero_padding_rows<Scalar>({alive, B}, units, {{gates_t, G, K, H}, {c_t, H}, {r_t, H}});
      barrier.wait(team);
      if (m > 0 && alive > 0) {
        multiply_rows<Scalar>({r_t, H}, alive, H, packed_hr.data(), m, h_t + features.begin, y.batch_stride, false,
                              lone_row_of(s.batch));
      }
      zero_padding_rows<Scalar>({alive, B}, features, {{h_t, y.batch_stride}});
      barrier.wait(team);
    }
  });
}

// Inputs as for projected_lstm_forward, plus dy (T, B, P), dh_n (B, P) and dc_n (B, H) or
// nullptr. Outputs: dx (T, B, I) written (ADDED to when accumulate_dx), the weight
// gradients (grad_hr (P, H) too) ADDED to; dh0 (B, P), dc0 (B, H) written; hidden_grads
// (T, B, P) time-major, dL/dh_t at every step, written unless nullptr.
template <typename Scalar, template <typename> class Cell>
void projected_lstm_backward(const SequenceShape& s, Index proj, SequenceView<const Scalar> x,
                             const GatedWeights<Scalar>& w, const Scalar* weight_hr,
                             const LstmOptions<Scalar>& options, const Scalar* h0, const Scalar* c0,
                             SequenceView<const Scalar> y, const Scalar* gates, const Scalar* cells,
                             const Scalar* cell_out, SequenceView<const Scalar> dy, const Scalar* dh_n,
                             const Scalar* dc_n, SequenceView<Scalar> dx, bool accumulate_dx,
                             const GatedGrads<Scalar>& grads, Scalar* grad_hr, Scalar* dh0, Scalar* dc0,
                             Scalar* hidden_grads) {
  constexpr Index K = Cell<Scalar>::kGates;
  const Index B = s.batch, H = s.hidden, P = proj, I = s.input, G = K * H, rows = s.rows();
  using Layout = PanelLayout<Scalar>;
  // (T*B, K*H): gradient of the gate pre-activations; (T*B, P): the total gradient of
  // h_t (from above and from step t+1), both kept for the weight GEMMs; (B, H): dr_t.
  PassBuffer<Scalar> d_gates_buffer(rows * G);
  PassBuffer<Scalar> d_hidden_buffer(rows * P);
  PassBuffer<Scalar> d_cell_out_buffer(B * H);
  Scalar* d_gates = d_gates_buffer.data();
  Scalar* d_hidden = d_hidden_buffer.data();
  Scalar* d_cell_out = d_cell_out_buffer.data();
  start_running_gradient(dh0, dh_n, B, P);
  start_running_gradient(dc0, dc_n, B, H);
  // The unit split only: a barrier a step, so one thread while the cores are busy.
  const int threads = adapt_to_busy_cores() ? 1 : plan_threads(B, H, K);

  run_team(threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const Range units = split_range(H, thread, team, Layout::kWidth);
    const Range features = split_range(P, thread, team, Layout::kWidth);
    const Index n = units.size(), m = features.size();
    // dh_{t-1}[:, features] = da_t W_hh[:, features]; dr_t[:, units] = dh_t W_hr[:, units];
    // dx_t = da_t W_ih for this thread's inputs.
    const PackedBuffer<Scalar> packed_hh = recurrent_columns(w.weight_hh, G, P, features);
    const PackedBuffer<Scalar> packed_hr = recurrent_columns(weight_hr, P, H, units);
    const InputGradient<Scalar> input_gradient(w.weight_ih, G, I, split_range(I, thread, team, Layout::kWidth));
    const std::vector<Scalar> no_recurrent_gradient(static_cast<size_t>(n), Scalar(0));
    ProductWorkspace<Scalar> workspace;
    std::vector<Scalar> bias_grad(K * n, Scalar(0));  // (K, n), summed by the cell
    Cell<Scalar> cell(options, units, H, nullptr, bias_grad.data());
    PreviousState<Scalar> c_before(s, H);
    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      const Index alive = s.active(t);
      const StateRows<Scalar> c_prev =
          c_before.at(step, {c0, H}, {cells + s.time_before(step) * B * H, H}, {0, alive});
      const Scalar* gates_t = gates + t * B * G;
      const Scalar* c_t = cells + t * B * H;
      Scalar* d_gates_t = d_gates + t * B * G;
      Scalar* d_hidden_t = d_hidden + t * B * P;
      // The total gradient of h_t is this pass's own input (d_hidden), and the caller's
      // hidden_grads when asked for.
      record_hidden_gradient<Scalar>(d_hidden, t, B, P, {0, B}, alive, features, dy, dh0);
      record_hidden_gradient<Scalar>(hidden_grads, t, B, P, {0, B}, alive, features, dy, dh0);
      barrier.wait(team);
      if (n > 0 && alive > 0) {
        multiply_rows<Scalar>({d_hidden_t, P}, alive, P, packed_hr.data(), n, d_cell_out + units.begin, H, false);
        for (Index b = 0; b < alive; ++b) {
          cell.backward(gates_t + b * G + units.begin, c_prev.row(b) + units.begin, c_t + b * H + units.begin,
                        d_cell_out + b * H + units.begin, no_recurrent_gradient.data(), dc0 + b * H + units.begin,
                        d_gates_t + b * G + units.begin);
        }
      }
      zero_padding_rows<Scalar>({alive, B}, units, {{d_gates_t, G, K, H}});
      barrier.wait(team);
      if (alive > 0 && m > 0) {
        multiply_rows<Scalar>({d_gates_t, G}, alive, G, packed_hh.data(), m, dh0 + features.begin, P, false,
                              LoneRow::split, panel_order_of(step));
      }
      input_gradient.step({d_gates_t, G}, {0, B}, alive, dx, t, accumulate_dx);
    }
    barrier.wait(team);
    input_gradient.after_loop(d_gates, s, {0, B}, dx, accumulate_dx, workspace);

    const Range gate_rows = split_range(G, thread, team, Layout::kRows);
    if (gate_rows.size() > 0) {
      const Index r0 = gate_rows.begin, nr = gate_rows.size();
      add_gate_weight_grads(s, d_gates, d_gates, G, r0, nr, x, h0, y, P, grads.weight_ih, grads.weight_hh,
                            workspace);
    }
    // Each thread's units are its own: no order to keep.
    add_bias_share(bias_grad.data(), K, H, units, grads.bias_ih);
    add_bias_share(bias_grad.data(), K, H, units, grads.bias_hh);
    // dW_hr += dh^T r over all steps.
    const Range proj_rows = split_range(P, thread, team, Layout::kRows);
    if (proj_rows.size() > 0) {
      transposed_products<Scalar>({d_hidden, P}, proj_rows.begin, proj_rows.size(), rows,
                                  {{{cell_out, H}, H, grad_hr + proj_rows.begin * H, H}}, true, workspace);
    }
  });
}

}  // namespace lstmcore
