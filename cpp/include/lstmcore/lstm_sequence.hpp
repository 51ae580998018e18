// The LSTM family, one layer and one direction, forward and backward through time.
//
// Every member (plain, peephole, coupled input-forget) shares this skeleton and differs
// only in its per-unit update, the `Cell` (lstm_cell.hpp, peephole_lstm_cell.hpp,
// coupled_lstm_cell.hpp): a cell has kGates gate blocks of H rows in W_ih and W_hh, a
// `forward` that turns one row's gate pre-activations into gates, c_t and h_t, and a
// `backward` that turns one row's dh_t, dc_t into gate gradients and dc_{t-1}.
//
// Speed (docs/design.md): the input product is hoisted out of the step, one GEMM for a chunk of
// steps just before they run (its output is still in cache when they read it); each step
// is the recurrent product for this thread's hidden units (weights packed once per pass,
// packed_product.hpp) followed by one fused element-wise pass; backward's step computes
// dh_{t-1} and dx_t from da_t read in place; weight gradients are GEMMs after the loop.
// One OpenMP region covers the pass; nothing is allocated inside the loop.
//
// Variable lengths follow PyTorch's packed sequences: the caller sorts the batch by
// length, longest first, so the rows alive at time t are a prefix of batch_sizes[t]
// rows; the products and the update skip the rest, whose outputs are zero. Reversed, a
// sequence's run starts at its own last step from h0, c0 (PreviousState) and ends at
// t = 0 like every other.
#pragma once

#include <algorithm>
#include <vector>

#include "lstmcore/activations.hpp"
#include "lstmcore/gate_weight_grads.hpp"
#include "lstmcore/input_gradient.hpp"
#include "lstmcore/interleaved_projection.hpp"
#include "lstmcore/lstm_options.hpp"
#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/team.hpp"
#include "lstmcore/threading.hpp"
#include "lstmcore/time_loop.hpp"
#include "lstmcore/zoneout.hpp"

namespace lstmcore {

// x      (T, B, I)               input, in either layout (SequenceView)
// h0, c0 (B, H)                  initial state
// y      (T, B, H):              h_t for every t (written)
// gates  (T*B, K*H)              tape: the cell's activated gates (written), or nullptr
// cells  (T*B, H)                tape: c_t (written), or nullptr (with gates: no tape)
// c_n    (B, H)                  each sequence's last c_t (written), or nullptr
// packed                        W_ih and W_hh packed once for every pass (a prepared layer),
//                                or nullptr: the pass packs them
// h_n is the row of y at each sequence's last step. Padding rows of y and the tape are zero.
// Without a tape (inference) the chunk goes to a buffer reused chunk after chunk and c_t
// alternates between two buffers, so the forward writes nothing of size T*B*H but y.
template <typename Scalar, template <typename> class Cell>
void lstm_forward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                  const LstmOptions<Scalar>& options, const Scalar* h0, const Scalar* c0, SequenceView<Scalar> y,
                  Scalar* gates, Scalar* cells, Scalar* c_n, const PackedGateWeights<Scalar>* packed = nullptr) {
  constexpr Index K = Cell<Scalar>::kGates;
  const Index B = s.batch, H = s.hidden, I = s.input, G = K * H;
  using Layout = PanelLayout<Scalar>;
  const PassPlan plan = plan_pass(s, K, sizeof(Scalar), Pass::forward);
  const bool taped = gates != nullptr;
  // At batch 1 the input projection runs inside the steps' products (interleaved_projection.hpp).
  const bool interleaved =
      interleaves_projection<Scalar>(s, K, plan.threads, taped, options.recurrent_mask != nullptr);
  const ProjectionChunks<Scalar> projection(s, G, gates, plan.rows_per_thread(B), !interleaved);
  const InterleavedRows<Scalar> interleaved_rows(G, interleaved);
  PassBuffer<Scalar> cell_pair(taped ? 0 : 2 * B * H);

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const PassPart part = pass_part(plan, s, thread, team, Layout::kWidth);
    const Range units = part.units, rows = part.rows;
    const Index n = units.size(), ub = units.begin, r0 = rows.begin;

    // This thread's rows of W_ih and W_hh, packed once; its gate bias b_ih + b_hh.
    // A pass of a row or two (a streaming step) reads W in place instead (unpacked_gates).
    const bool unpacked = s.rows() <= kUnpackedRows;
    const GatePanels<Scalar> panels(w, K, H, I, H, units, !unpacked, packed);
    PackedBuffer<Scalar> bias(K * n);
    fused_gate_bias(w, K, K, H, units, bias.data());
    ProductWorkspace<Scalar> workspace;
    // (live, H): h_{t-1} * mask for the unpacked products under recurrent dropout.
    std::vector<Scalar> masked_h(unpacked && options.recurrent_mask ? rows.size() * H : 0);
    const Cell<Scalar> cell(options, units, H, bias.data());
    // Recurrent dropout: the mask of this part's rows packed like h_{t-1}'s tiles, to
    // multiply them in place; repacked when the rows alive change, since the tiles'
    // heights depend on their count.
    PackedBuffer<Scalar> mask_tiles;
    Index mask_rows = 0;
    PreviousState<Scalar> h_before(s, H), c_before(s, H);
    if (options.recurrent_mask && n > 0) mask_tiles.resize(Layout::tiles(rows.size()) * Layout::kRows * H);
    InterleavedProjection<Scalar> mixed(s, x, interleaved_rows, K, units, panels, interleaved && n > 0);
    if (interleaved && n > 0) mixed.project_first_chunk(workspace);

    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      // This part's rows [r0, live_end) hold real steps at time t, [live_end, rows.end) padding.
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      const Index t_before = s.time_before(step);
      const StateRows<Scalar> h_prev =
          h_before.at(step, {h0, H}, {y.at(t_before, 0), y.batch_stride}, {r0, live_end});
      const RowView<Scalar> h_prev_rows = h_prev.rows(r0);
      Scalar* h_t = y.at(t, 0);
      // The input projection of a chunk of steps, for this thread's gate columns and rows
      // only, so it needs no barrier.
      if (projection.starts(step) && n > 0 && rows.size() > 0 && !unpacked && !interleaved) {
        const Index first_time = projection.first_time(step);
        packed_products<Scalar>(x.rows(first_time, B, rows), projection.steps(step) * rows.size(), I, panels.ih(),
                                panels.ih_size(), n, projection.chunk_rows(step, rows, ub), H, K, false, workspace,
                                lone_row_of(s.batch));
      }
      Scalar* gates_t = interleaved ? interleaved_rows.row(step) : projection.rows(step);
      Scalar* c_t = taped ? cells + t * B * H : cell_pair.data() + (step & 1) * B * H;
      const Scalar* c_later = taped ? cells + t_before * B * H : cell_pair.data() + ((step - 1) & 1) * B * H;
      const StateRows<Scalar> c_prev = c_before.at(step, {c0, H}, {c_later, H}, {r0, live_end});
      Scalar* gates_live = gates_t + r0 * G + ub;
      // With two tiles of rows or more, a panel of units at a time: its K gate products,
      // then the cell on its units while their gates are still in L1 (smaller batches gained
      // nothing). Each value is computed as by the gate-by-gate loop below.
      const bool by_panel = live >= 2 * Layout::kRows && mask_tiles.empty() && !options.zoneout();
      if (unpacked) {
        // x_t W_ih^T + h_{t-1} (* mask) W_hh^T for this thread's gate rows, W read in place.
        RowView<Scalar> h_rows = h_prev_rows;
        if (options.recurrent_mask) {
          for (Index b = r0; b < live_end; ++b) {
            for (Index k = 0; k < H; ++k) {
              masked_h[(b - r0) * H + k] = h_prev.row(b)[k] * options.recurrent_mask[b * H + k];
            }
          }
          h_rows = {masked_h.data(), H};
        }
        for (Index gate = 0; gate < K && n > 0 && live > 0; ++gate) {
          const Index row = gate * H + ub;
          multiply_unpacked<Scalar>({x.at(t, r0), x.batch_stride}, live, I, w.weight_ih + row * I, I, n,
                                    gates_live + gate * H, G, false);
          multiply_unpacked<Scalar>(h_rows, live, H, w.weight_hh + row * H, H, n, gates_live + gate * H, G, true);
        }
      } else if (n > 0 && by_panel) {
        for (Index j0 = 0; j0 < n; j0 += Layout::kWidth) {
          const Index cols = std::min(Layout::kWidth, n - j0);
          for (Index gate = 0; gate < K; ++gate) {
            // Panels are kWidth columns by depth H: columns from j0 start j0 * H values in.
            multiply_rows<Scalar>(h_prev_rows, live, H, panels.hh(gate) + j0 * H, cols, gates_live + gate * H + j0,
                                  G, true, lone_row_of(s.batch));
          }
          for (Index b = r0; b < live_end; ++b) {
            cell.forward(gates_t + b * G + ub, c_prev.row(b) + ub, c_t + b * H + ub, h_t + b * y.batch_stride + ub,
                         {j0, j0 + cols});
          }
        }
      } else if (n > 0 && live > 0 && interleaved) {
        mixed.step(step, h_prev.row(r0), workspace);
      } else if (n > 0 && live > 0 && mask_tiles.empty()) {
        const PanelOrder order = panel_order_of(step);
        for (Index i = 0; i < K; ++i) {
          const Index gate = in_order(i, K, order);
          multiply_rows<Scalar>(h_prev_rows, live, H, panels.hh(gate), n, gates_live + gate * H, G, true,
                                lone_row_of(s.batch), order);
        }
      } else if (n > 0 && live > 0) {
        // h_{t-1} * mask, packed once for the K gate products.
        Scalar* h_tiles = workspace.a(Layout::tiles(live) * Layout::kRows * H);
        pack_tiles<Scalar>(h_prev_rows, 0, live, 0, H, h_tiles);
        if (mask_rows != live) {
          pack_tiles<Scalar>({options.recurrent_mask, H}, r0, live, 0, H, mask_tiles.data());
          mask_rows = live;
        }
        const Index packed = Layout::tiles(live) * Layout::kRows * H;
        for (Index k = 0; k < packed; ++k) h_tiles[k] *= mask_tiles[k];
        const PanelOrder order = panel_order_of(step);
        for (Index i = 0; i < K; ++i) {
          const Index gate = in_order(i, K, order);
          multiply_packed(h_tiles, live, H, panels.hh(gate), n, gates_live + gate * H, G, true,
                          lone_row_of(s.batch), order);
        }
      }
      if (n > 0 && live > 0) {
        for (Index b = r0; b < live_end && !by_panel; ++b) {
          cell.forward(gates_t + b * G + ub, c_prev.row(b) + ub, c_t + b * H + ub, h_t + b * y.batch_stride + ub);
          if (options.zoneout()) {
            Scalar* update = options.cell_updates ? options.cell_updates + (t * B + b) * H + ub : nullptr;
            Zoneout<Scalar>(options, t * B + b, H, ub)
                .forward(n, c_prev.row(b) + ub, c_t + b * H + ub, h_prev.row(b) + ub, h_t + b * y.batch_stride + ub,
                         update);
          }
        }
        for (Index b = part.live_end(s.active_after(step)); b < live_end && c_n; ++b) {
          std::copy_n(c_t + b * H + ub, n, c_n + b * H + ub);
        }
      }
      Scalar* updates_t = taped && options.cell_updates ? options.cell_updates + t * B * H : nullptr;
      zero_padding_rows<Scalar>({live_end, rows.end}, units,
                                {{h_t, y.batch_stride},
                                 {taped ? gates_t : nullptr, G, K, H},
                                 {taped ? c_t : nullptr, H},
                                 {updates_t, H}});
      // Split over units, the next step reads every thread's h_t; over the batch, only
      // this thread's rows.
      if (!plan.by_batch) barrier.wait(team);
    }
  });
}

// Inputs as for lstm_forward, plus
// dy          (T, B, H): gradient of y (padding rows ignored)
// dh_n, dc_n  (B, H) gradient of the final state, or nullptr for zero
// Outputs:
// dx          (T, B, I): gradient of x, written, or ADDED to when accumulate_dx (the second
//             direction of a bidirectional layer)
// grads       gradients of the weights (and options.peephole_grad), ADDED to
// dh0, dc0    (B, H): gradient of the initial state (written)
// hidden_grads (T, B, H) time-major: dL/dh_t at every step (written), or nullptr
template <typename Scalar, template <typename> class Cell>
void lstm_backward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                   const LstmOptions<Scalar>& options, const Scalar* h0, const Scalar* c0,
                   SequenceView<const Scalar> y, const Scalar* gates, const Scalar* cells,
                   SequenceView<const Scalar> dy, const Scalar* dh_n, const Scalar* dc_n, SequenceView<Scalar> dx,
                   bool accumulate_dx, const GatedGrads<Scalar>& grads, Scalar* dh0, Scalar* dc0,
                   Scalar* hidden_grads) {
  constexpr Index K = Cell<Scalar>::kGates;
  const Index B = s.batch, H = s.hidden, I = s.input, G = K * H, rows = s.rows();
  // (T*B, K*H): gradient of the gate pre-activations a_t, kept for the weight GEMMs.
  PassBuffer<Scalar> d_gates_buffer(rows * G);
  Scalar* d_gates = d_gates_buffer.data();
  start_running_gradient(dh0, dh_n, B, H);
  start_running_gradient(dc0, dc_n, B, H);
  const PassPlan plan = plan_pass(s, K, sizeof(Scalar), Pass::backward);
  // With recurrent dropout, W_hh saw h_{t-1} * mask: dW_hh needs those products, so h0
  // and y are masked into copies (time-major, stride H).
  const Scalar* mask = options.recurrent_mask;
  PassBuffer<Scalar> masked_h0(mask ? B * H : 0), masked_y(mask ? rows * H : 0);
  // Zoneout and recurrent dropout change what reaches dh_{t-1} from the product.
  const bool plain_recurrence = !mask && !options.zoneout();
  using Layout = PanelLayout<Scalar>;

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    const PassPart part = pass_part(plan, s, thread, team, Layout::kWidth);
    const Range units = part.units, rows_of_part = part.rows;
    const Index n = units.size(), ub = units.begin, r0 = rows_of_part.begin;
    // This thread's columns of W_hh (all K*H rows), packed once for the step's
    // dh_{t-1} = da_t W_hh; and dx_t = da_t W_ih for its slice of the inputs (all of them
    // when the pass is split over the batch).
    const PackedBuffer<Scalar> packed_hh = recurrent_columns(w.weight_hh, G, H, units);
    const InputGradient<Scalar> input_gradient(w.weight_ih, G, I, part.inputs);
    ProductWorkspace<Scalar> workspace;
    // This thread's shares of the bias gradient (K, n) and the peephole gradient (Q, H),
    // which the cell sums over its rows; added to grads in thread order after the loop,
    // so that a split over the batch adds the same values in the same order every call.
    std::vector<Scalar> bias_grad(K * n, Scalar(0));
    constexpr Index Q = Cell<Scalar>::kPeepholes;
    std::vector<Scalar> peephole_grad(options.peephole_grad ? Q * H : 0, Scalar(0));
    LstmOptions<Scalar> thread_options = options;
    if (options.peephole_grad) thread_options.peephole_grad = peephole_grad.data();
    Cell<Scalar> cell(thread_options, units, H, nullptr, bias_grad.data());
    // Per-thread rows for zoneout's split gradients and the masked recurrent product.
    std::vector<Scalar> update_dy(n), direct_dc(n), zeros(n, Scalar(0));
    std::vector<Scalar> recurrent(plain_recurrence ? 0 : rows_of_part.size() * n);
    PreviousState<Scalar> c_before(s, H);
    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      const Index live_end = part.live_end(s.active(t)), live = live_end - r0;
      const StateRows<Scalar> c_prev =
          c_before.at(step, {c0, H}, {cells + s.time_before(step) * B * H, H}, {r0, live_end});
      const Scalar* gates_t = gates + t * B * G;
      const Scalar* c_t = cells + t * B * H;
      Scalar* d_gates_t = d_gates + t * B * G;
      record_hidden_gradient<Scalar>(hidden_grads, t, B, H, rows_of_part, live_end, units, dy, dh0);
      for (Index b = r0; b < live_end && n > 0; ++b) {
        Scalar* dh_b = dh0 + b * H + ub;
        Scalar* dc_b = dc0 + b * H + ub;
        if (!options.zoneout()) {
          cell.backward(gates_t + b * G + ub, c_prev.row(b) + ub, c_t + b * H + ub, dy.at(t, b) + ub, dh_b, dc_b,
                        d_gates_t + b * G + ub);
          continue;
        }
        // The cell saw its own update c~_t; kappa's share of the gradients bypasses it.
        Zoneout<Scalar>(options, t * B + b, H, ub)
            .split_gradients(n, dy.at(t, b) + ub, dh_b, dc_b, update_dy.data(), direct_dc.data());
        cell.backward(gates_t + b * G + ub, c_prev.row(b) + ub, options.cell_updates + (t * B + b) * H + ub,
                      update_dy.data(), zeros.data(), dc_b, d_gates_t + b * G + ub);
        for (Index j = 0; j < n; ++j) dc_b[j] += direct_dc[j];
      }
      zero_padding_rows<Scalar>({live_end, rows_of_part.end}, units, {{d_gates_t, G, K, H}});
      // Split over units, dh_{t-1} for this thread's units needs every unit's gate
      // gradients of step t; the next step reads only the units this thread writes, so no
      // second barrier. Over the batch, this thread's rows need only its own. Both products
      // read da_t in place, still hot from the cells.
      if (!plan.by_batch) barrier.wait(team);
      const RowView<Scalar> da_t{d_gates_t + r0 * G, G};
      input_gradient.step(da_t, rows_of_part, live_end, dx, t, accumulate_dx);
      if (n > 0 && live > 0 && plain_recurrence) {
        multiply_rows(da_t, live, G, packed_hh.data(), n, dh0 + r0 * H + ub, H, false, LoneRow::split,
                      panel_order_of(step));
      } else if (n > 0 && live > 0) {
        // dh_{t-1} = (zoneout's direct part, already in dh) + (da_t W_hh) * mask.
        multiply_rows(da_t, live, G, packed_hh.data(), n, recurrent.data(), n, false, LoneRow::split,
                      panel_order_of(step));
        for (Index b = r0; b < live_end; ++b) {
          Scalar* dh_b = dh0 + b * H + ub;
          const Scalar* product = recurrent.data() + (b - r0) * n;
          const bool keep_direct = options.zoneout();
          for (Index j = 0; j < n; ++j) {
            const Scalar through_weights = mask ? product[j] * mask[b * H + ub + j] : product[j];
            dh_b[j] = keep_direct ? dh_b[j] + through_weights : through_weights;
          }
        }
      }
    }
    if (mask) {
      const Range rows_to_mask = split_range(rows, thread, team, 1);
      for (Index r = rows_to_mask.begin; r < rows_to_mask.end; ++r) {
        const Scalar* h = y.at(r / B, r % B);
        const Scalar* m = mask + (r % B) * H;
        for (Index k = 0; k < H; ++k) masked_y[r * H + k] = h[k] * m[k];
      }
      const Range rows_of_h0 = split_range(B, thread, team, 1);
      for (Index r = rows_of_h0.begin; r < rows_of_h0.end; ++r) {
        for (Index k = 0; k < H; ++k) masked_h0[r * H + k] = h0[r * H + k] * mask[r * H + k];
      }
    }
    barrier.wait(team);
    input_gradient.after_loop(d_gates, s, rows_of_part, dx, accumulate_dx, workspace);
    const Scalar* h_first = mask ? masked_h0.data() : h0;
    const SequenceView<const Scalar> h_later = mask ? SequenceView<const Scalar>{masked_y.data(), B * H, H} : y;

    // Weight gradients as products over all steps, split by output rows.
    const Range gate_rows = split_range(G, thread, team, PanelLayout<Scalar>::kRows);
    if (gate_rows.size() > 0) {
      add_gate_weight_grads(s, d_gates, d_gates, G, gate_rows.begin, gate_rows.size(), x, h_first, h_later, H,
                            grads.weight_ih, grads.weight_hh, workspace);
    }
    in_thread_order(thread, team, barrier, [&] {
      add_bias_share(bias_grad.data(), K, H, units, grads.bias_ih);
      add_bias_share(bias_grad.data(), K, H, units, grads.bias_hh);
      for (Index q = 0; q < Q && options.peephole_grad; ++q) {
        for (Index j = ub; j < units.end; ++j) options.peephole_grad[q * H + j] += peephole_grad[q * H + j];
      }
    });
  });
}

}  // namespace lstmcore
