// The layer-normalised LSTM (Ba et al. 2016), one layer and one direction:
//   a_t = LN(x_t W_ih^T; g_ih) + LN(h_{t-1} W_hh^T; g_hh) + b_ih + b_hh         (B, 4H)
//   i, f, g, o from a_t as in lstm_cell.hpp;  c_t = f * c_{t-1} + i * g
//   h_t = o * tanh(LN(c_t; g_c) + beta_c)
// where LN(v; g) = g * (v - mean(v)) / sqrt(var(v) + eps) over the features of one row
// (the 4H gate pre-activations, or the H cells), eps = kLayerNormEps.
//
// A row's normalisation needs all of that row's features, which the unit-split products
// spread over threads. So a pass split over units (threading.hpp) has two phases a step:
// the recurrent product split by hidden units (as lstm_sequence.hpp), a barrier, then the
// element-wise update split by batch rows, and a barrier. A pass split over the batch
// runs both phases on each thread's own rows, with no barrier. The tape keeps the
// normalised projections and cells and their inverse standard deviations, so backward
// never recomputes a statistic.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "lstmcore/activations.hpp"
#include "lstmcore/column_sums.hpp"
#include "lstmcore/gate_clamp.hpp"
#include "lstmcore/gate_weight_grads.hpp"
#include "lstmcore/input_gradient.hpp"
#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"
#include "lstmcore/team.hpp"
#include "lstmcore/threading.hpp"
#include "lstmcore/time_loop.hpp"

namespace lstmcore {

constexpr double kLayerNormEps = 1e-5;

// Gains and biases of the normalisations, and their gradients (added to).
template <typename Scalar>
struct LayerNormParams {
  const Scalar* gain_ih;    // (4H)
  const Scalar* gain_hh;    // (4H)
  const Scalar* gain_cell;  // (H)
  const Scalar* bias_cell;  // (H)
};
template <typename Scalar>
struct LayerNormGrads {
  Scalar* gain_ih;
  Scalar* gain_hh;
  Scalar* gain_cell;
  Scalar* bias_cell;
};

// What forward keeps for backward, beyond the gates and cells: per row (t*B + b) the
// normalised input and recurrent projections (4H each), the normalised cell (H) and the
// three inverse standard deviations.
template <typename Scalar>
struct LayerNormTape {
  Scalar* input_norm;   // (T*B, 4H)
  Scalar* hidden_norm;  // (T*B, 4H)
  Scalar* cell_norm;    // (T*B, H)
  Scalar* inv_std;      // (T*B, 3): input, hidden, cell
};

// The batch rows whose element-wise update (normalisations, cell) a thread runs: its own
// rows split over the batch; split over units, a share of all rows, since a row's
// normalisation needs every unit of it.
inline Range rows_to_update(const PassPlan& plan, const PassPart& part, Index batch, int thread, int team) {
  return plan.by_batch ? part.rows : split_range(batch, thread, team, 1);
}

// The sum of term(k) for k < n in double, as kParts independent partial sums: one running
// sum is a chain of dependent adds, 4 cycles each, and such chains dominated the
// layer-norm backward's element-wise time; independent sums the compiler vectorises.
template <typename Term>
double sum_in_double(Index n, Term term) {
  constexpr int kParts = 32;
  double part[kParts] = {};
  Index k = 0;
  for (; k + kParts <= n; k += kParts) {
    for (int l = 0; l < kParts; ++l) part[l] += term(k + l);
  }
  double sum = 0;
  for (; k < n; ++k) sum += term(k);
  for (int l = 0; l < kParts; ++l) sum += part[l];
  return sum;
}

// v (n) <- (v - mean) / sqrt(var + eps); returns 1 / sqrt(var + eps). Two passes, sums in
// double: float32 rows of a few thousand features lose nothing to the order.
template <typename Scalar>
Scalar normalize_row(Scalar* v, Index n) {
  const double mean = sum_in_double(n, [&](Index k) { return double(v[k]); }) / n;
  const double squares = sum_in_double(n, [&](Index k) { return (v[k] - mean) * (v[k] - mean); });
  const double inv_std = 1.0 / std::sqrt(squares / n + kLayerNormEps);
  for (Index k = 0; k < n; ++k) v[k] = static_cast<Scalar>((v[k] - mean) * inv_std);
  return static_cast<Scalar>(inv_std);
}

// Gradient through the normalisation: d_norm is dL/dv_hat, norm is v_hat; writes dL/dv.
template <typename Scalar>
void normalize_row_backward(const Scalar* d_norm, const Scalar* norm, Scalar inv_std, Index n, Scalar* dv) {
  const double sum = sum_in_double(n, [&](Index k) { return double(d_norm[k]); });
  const double dot = sum_in_double(n, [&](Index k) { return double(d_norm[k]) * norm[k]; });
  const Scalar mean_d = static_cast<Scalar>(sum / n), mean_dot = static_cast<Scalar>(dot / n);
  for (Index k = 0; k < n; ++k) dv[k] = inv_std * (d_norm[k] - mean_d - norm[k] * mean_dot);
}

// x (T, B, I) and y (T, B, H) (written) in either layout (SequenceView); h0, c0 (B, H);
// gates (T*B, 4H), cells (T*B, H) and `tape` (written), or gates, cells and every pointer
// of `tape` nullptr (inference: no tape); c_n (B, H): each sequence's last c_t (written),
// or nullptr.
// The input projection is computed a chunk of steps ahead (kChunkRows), by unit columns;
// each row of it is normalised after the step's barrier by the thread that reads it, so
// the chunk costs no barrier of its own. Without a tape the chunk, the step's recurrent
// product and c_t (two buffers) go to buffers reused step after step, and a row's gates
// and normalised cell to the thread's own.
template <typename Scalar>
void layer_norm_lstm_forward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                             const LayerNormParams<Scalar>& ln, const std::array<const Scalar*, 4>& clamps,
                             const Scalar* h0, const Scalar* c0, SequenceView<Scalar> y, Scalar* gates,
                             Scalar* cells, const LayerNormTape<Scalar>& tape, Scalar* c_n) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 4 * H;
  using Layout = PanelLayout<Scalar>;
  const PassPlan plan = plan_pass(s, 4, sizeof(Scalar), Pass::forward);
  std::vector<Scalar> bias(G);
  fused_gate_bias(w, 4, 4, H, {0, H}, bias.data());
  const GateClamps<Scalar> held(clamps, 0);
  const bool taped = gates != nullptr;
  const ProjectionChunks<Scalar> projection(s, G, tape.input_norm, plan.rows_per_thread(B));
  PassBuffer<Scalar> step_hidden(taped ? 0 : B * G);
  PassBuffer<Scalar> cell_pair(taped ? 0 : 2 * B * H);

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    // The products' share (units, rows) and the rows this thread updates.
    const PassPart part = pass_part(plan, s, thread, team, Layout::kWidth);
    const Range units = part.units, my_rows = rows_to_update(plan, part, B, thread, team);
    const Index n = units.size(), r0 = part.rows.begin;
    const GatePanels<Scalar> panels(w, 4, H, I, H, units);
    ProductWorkspace<Scalar> workspace;
    PackedBuffer<Scalar> row_gates(taped ? 0 : G), row_cell_norm(taped ? 0 : H);
    PreviousState<Scalar> h_before(s, H), c_before(s, H);

    for (Index step = 0; step < s.steps; ++step) {
      const Index t = s.time_at(step);
      const Index alive = s.active(t);
      const Index live = part.live_end(alive) - r0;
      // The rows this thread updates hold real steps at time t in [my_rows.begin, update_end).
      const Index update_end = std::clamp(alive, my_rows.begin, my_rows.end);
      const Index t_before = s.time_before(step);
      const StateRows<Scalar> h_prev =
          h_before.at(step, {h0, H}, {y.at(t_before, 0), y.batch_stride}, {r0, part.live_end(alive)});
      const bool chunk_starts = projection.starts(step);
      if (chunk_starts && n > 0 && part.rows.size() > 0) {
        packed_products<Scalar>(x.rows(projection.first_time(step), B, part.rows),
                                projection.steps(step) * part.rows.size(), I, panels.ih(), panels.ih_size(), n,
                                projection.chunk_rows(step, part.rows, units.begin), H, 4, false, workspace,
                                lone_row_of(s.batch));
      }
      const Scalar* c_later = taped ? cells + t_before * B * H : cell_pair.data() + ((step - 1) & 1) * B * H;
      const StateRows<Scalar> c_prev = c_before.at(step, {c0, H}, {c_later, H}, {my_rows.begin, update_end});
      Scalar* c_t = taped ? cells + t * B * H : cell_pair.data() + (step & 1) * B * H;
      Scalar* hidden_t = taped ? tape.hidden_norm + t * B * G : step_hidden.data();
      if (n > 0 && live > 0) {
        const PanelOrder order = panel_order_of(step);
        for (Index i = 0; i < 4; ++i) {
          const Index gate = in_order(i, 4, order);
          multiply_rows<Scalar>(h_prev.rows(r0), live, H, panels.hh(gate), n,
                                hidden_t + r0 * G + gate * H + units.begin, G, false, lone_row_of(s.batch), order);
        }
      }
      if (!plan.by_batch) barrier.wait(team);
      for (Index k = 0; chunk_starts && k < projection.steps(step); ++k) {
        for (Index b = my_rows.begin; b < my_rows.end; ++b) {
          const Scalar inv_std = normalize_row(projection.chunk(step) + (k * B + b) * G, G);
          if (taped) tape.inv_std[((projection.first_time(step) + k) * B + b) * 3] = inv_std;
        }
      }
      if (taped) {
        zero_padding_rows<Scalar>({update_end, my_rows.end}, {0, H},
                                  {{y.at(t, 0), y.batch_stride},
                                   {gates + t * B * G, G, 4, H},
                                   {c_t, H},
                                   {tape.cell_norm + t * B * H, H},
                                   {hidden_t, G, 4, H}});
      } else {
        zero_padding_rows<Scalar>({update_end, my_rows.end}, {0, H}, {{y.at(t, 0), y.batch_stride}});
      }
      for (Index b = my_rows.begin; b < update_end; ++b) {
        const Index r = t * B + b;
        Scalar* gate = taped ? gates + r * G : row_gates.data();
        Scalar* c = c_t + b * H;
        Scalar* c_norm = taped ? tape.cell_norm + r * H : row_cell_norm.data();
        Scalar* h = y.at(t, b);
        const Scalar* xn = projection.rows(step) + b * G;
        Scalar* hn = hidden_t + b * G;
        const Scalar hidden_inv_std = normalize_row(hn, G);
        if (taped) tape.inv_std[r * 3 + 1] = hidden_inv_std;
        const Scalar* c_old = c_prev.row(b);
        for_each_unit<Scalar>(H, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          auto pre = [&](Index k) {
            return padd(pmadd(ploadu<P>(ln.gain_ih + k), ploadu<P>(xn + k), ploadu<P>(bias.data() + k)),
                        pmul(ploadu<P>(ln.gain_hh + k), ploadu<P>(hn + k)));
          };
          const P i = held.value(kClampInput, j, gate_sigmoid(pre(j)));
          const P f = held.value(kClampForget, j, gate_sigmoid(pre(H + j)));
          const P g = held.value(kClampCandidate, j, gate_tanh(pre(2 * H + j)));
          const P o = held.value(kClampOutput, j, gate_sigmoid(pre(3 * H + j)));
          pstoreu(gate + j, i);
          pstoreu(gate + H + j, f);
          pstoreu(gate + 2 * H + j, g);
          pstoreu(gate + 3 * H + j, o);
          const P c_new = pmadd(f, ploadu<P>(c_old + j), pmul(i, g));
          pstoreu(c + j, c_new);
          pstoreu(c_norm + j, c_new);
        });
        const Scalar cell_inv_std = normalize_row(c_norm, H);
        if (taped) tape.inv_std[r * 3 + 2] = cell_inv_std;
        for_each_unit<Scalar>(H, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P normed = pmadd(ploadu<P>(ln.gain_cell + j), ploadu<P>(c_norm + j), ploadu<P>(ln.bias_cell + j));
          pstoreu(h + j, pmul(ploadu<P>(gate + 3 * H + j), gate_tanh(normed)));
        });
        if (c_n && b >= s.active_after(step)) std::copy_n(c, H, c_n + b * H);
      }
      if (!plan.by_batch) barrier.wait(team);
    }
  });
}

// Inputs as for forward, plus dy (T, B, H), dh_n, dc_n (B, H) or nullptr. Outputs: dx
// (T, B, I) written (ADDED to when accumulate_dx), the weight gradients and `ln_grads` ADDED
// to; dh0, dc0 (B, H) written; hidden_grads (T, B, H) time-major, dL/dh_t at every step,
// written unless nullptr.
template <typename Scalar>
void layer_norm_lstm_backward(const SequenceShape& s, SequenceView<const Scalar> x, const GatedWeights<Scalar>& w,
                              const LayerNormParams<Scalar>& ln, const std::array<const Scalar*, 4>& clamps,
                              const Scalar* h0, const Scalar* c0, SequenceView<const Scalar> y, const Scalar* gates,
                              const Scalar* cells, const LayerNormTape<Scalar>& tape, SequenceView<const Scalar> dy,
                              const Scalar* dh_n, const Scalar* dc_n, SequenceView<Scalar> dx, bool accumulate_dx,
                              const GatedGrads<Scalar>& grads, const LayerNormGrads<Scalar>& ln_grads, Scalar* dh0,
                              Scalar* dc0, Scalar* hidden_grads) {
  const Index B = s.batch, H = s.hidden, I = s.input, G = 4 * H, rows = s.rows();
  using Layout = PanelLayout<Scalar>;
  // (T*B, 4H) each: gradients of the raw input projection and of the raw recurrent
  // projection, kept for the weight GEMMs after the loop.
  PassBuffer<Scalar> d_input(rows * G), d_hidden(rows * G);
  start_running_gradient(dh0, dh_n, B, H);
  start_running_gradient(dc0, dc_n, B, H);
  const PassPlan plan = plan_pass(s, 4, sizeof(Scalar), Pass::backward);
  const GateClamps<Scalar> held(clamps, 0);

  run_team(plan.threads, [&](const int thread, const int team, StepBarrier& barrier) {
    // The products' share (units, rows) and the rows this thread updates.
    const PassPart part = pass_part(plan, s, thread, team, Layout::kWidth);
    const Range units = part.units, my_rows = rows_to_update(plan, part, B, thread, team);
    const Index n = units.size(), r0 = part.rows.begin;
    // dh_{t-1} in the step from this thread's columns of W_hh; dx_t for its inputs (all
    // of them when the pass is split over the batch).
    const PackedBuffer<Scalar> packed_hh = recurrent_columns(w.weight_hh, G, H, units);
    const InputGradient<Scalar> input_gradient(w.weight_ih, G, I, part.inputs);
    ProductWorkspace<Scalar> workspace;
    // A row's gradients of a_t and of the normalised cell's output LN(c_t) + beta_c.
    std::vector<Scalar> da(G), d_out(H), d_norm(G), d_cell_norm(H), dc_from_h(H);
    // This thread's column sums over its rows (the bias, gain_ih, gain_hh gradients, then
    // gain_cell's and beta_c's), taken while a row is hot. Summed after the loop over whole
    // tapes (a_t's gradient, the normalised projections and cells), they would read those
    // tapes back from memory.
    enum Sum { kBias, kGainIh, kGainHh, kGainCell, kBiasCell };
    ColumnSums<Scalar> sums({G, G, G, H, H});  // widths in the order of Sum
    PreviousState<Scalar> c_before(s, H);
    for (Index step = s.steps - 1; step >= 0; --step) {
      const Index t = s.time_at(step);
      const Index alive = s.active(t);
      const Index update_end = std::clamp(alive, my_rows.begin, my_rows.end);
      const StateRows<Scalar> c_prev =
          c_before.at(step, {c0, H}, {cells + s.time_before(step) * B * H, H}, {my_rows.begin, update_end});
      record_hidden_gradient<Scalar>(hidden_grads, t, B, H, my_rows, update_end, {0, H}, dy, dh0);
      zero_padding_rows<Scalar>({update_end, my_rows.end}, {0, H},
                                {{d_input.data() + t * B * G, G, 4, H}, {d_hidden.data() + t * B * G, G, 4, H}});
      for (Index b = my_rows.begin; b < update_end; ++b) {
        const Index r = t * B + b;
        Scalar* d_in = d_input.data() + r * G;
        Scalar* d_rec = d_hidden.data() + r * G;
        const Scalar* gate = gates + r * G;
        const Scalar* c_norm = tape.cell_norm + r * H;
        const Scalar* c_old = c_prev.row(b);
        const Scalar* dy_b = dy.at(t, b);
        Scalar* dh_b = dh0 + b * H;
        Scalar* dc_b = dc0 + b * H;
        // h_t = o * tanh(n_t), n_t = g_c * c_hat + beta_c.
        for_each_unit<Scalar>(H, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P one = pset1<P>(Scalar(1));
          const P o = ploadu<P>(gate + 3 * H + j);
          const P tanh_n =
              gate_tanh(pmadd(ploadu<P>(ln.gain_cell + j), ploadu<P>(c_norm + j), ploadu<P>(ln.bias_cell + j)));
          const P dh_total = padd(ploadu<P>(dy_b + j), ploadu<P>(dh_b + j));
          const P dn = pmul(pmul(dh_total, o), psub(one, pmul(tanh_n, tanh_n)));
          pstoreu(d_out.data() + j, dn);
          pstoreu(d_cell_norm.data() + j, pmul(dn, ploadu<P>(ln.gain_cell + j)));
          pstoreu(da.data() + 3 * H + j,
                  held.gradient(kClampOutput, j, pmul(pmul(dh_total, tanh_n), pmul(o, psub(one, o)))));
        });
        normalize_row_backward(d_cell_norm.data(), c_norm, tape.inv_std[r * 3 + 2], H, dc_from_h.data());
        for_each_unit<Scalar>(H, [&](Index j, auto p) {
          using namespace Eigen::internal;
          using P = decltype(p);
          const P one = pset1<P>(Scalar(1));
          const P i = ploadu<P>(gate + j), f = ploadu<P>(gate + H + j), g = ploadu<P>(gate + 2 * H + j);
          const P dc_total = padd(ploadu<P>(dc_b + j), ploadu<P>(dc_from_h.data() + j));
          pstoreu(da.data() + j, held.gradient(kClampInput, j, pmul(pmul(dc_total, g), pmul(i, psub(one, i)))));
          pstoreu(
              da.data() + H + j,
              held.gradient(kClampForget, j, pmul(pmul(dc_total, ploadu<P>(c_old + j)), pmul(f, psub(one, f)))));
          pstoreu(da.data() + 2 * H + j,
                  held.gradient(kClampCandidate, j, pmul(pmul(dc_total, i), psub(one, pmul(g, g)))));
          pstoreu(dc_b + j, pmul(dc_total, f));
        });
        const Scalar* input_norm = tape.input_norm + r * G;
        const Scalar* hidden_norm = tape.hidden_norm + r * G;
        sums.add(kBias, da.data());
        sums.add_products(kGainIh, da.data(), input_norm);
        sums.add_products(kGainHh, da.data(), hidden_norm);
        sums.add_products(kGainCell, d_out.data(), c_norm);
        sums.add(kBiasCell, d_out.data());
        // a_t = g_ih * x_hat + g_hh * h_hat + b: back through both normalisations.
        for (Index k = 0; k < G; ++k) d_norm[k] = da[k] * ln.gain_ih[k];
        normalize_row_backward(d_norm.data(), input_norm, tape.inv_std[r * 3], G, d_in);
        for (Index k = 0; k < G; ++k) d_norm[k] = da[k] * ln.gain_hh[k];
        normalize_row_backward(d_norm.data(), hidden_norm, tape.inv_std[r * 3 + 1], G, d_rec);
      }
      if (!plan.by_batch) barrier.wait(team);
      const Index live_end = part.live_end(alive), live = live_end - r0;
      if (n > 0 && live > 0) {
        multiply_rows<Scalar>({d_hidden.data() + (t * B + r0) * G, G}, live, G, packed_hh.data(), n,
                              dh0 + r0 * H + units.begin, H, false, LoneRow::split, panel_order_of(step));
      }
      input_gradient.step({d_input.data() + (t * B + r0) * G, G}, part.rows, live_end, dx, t, accumulate_dx);
      if (!plan.by_batch) barrier.wait(team);
    }
    // The weight gradients below read every thread's rows.
    if (plan.by_batch) barrier.wait(team);
    input_gradient.after_loop(d_input.data(), s, part.rows, dx, accumulate_dx, workspace);

    const Range gate_rows = split_range(G, thread, team, Layout::kRows);
    if (gate_rows.size() > 0) {
      const Index r0 = gate_rows.begin, nr = gate_rows.size();
      add_gate_weight_grads<Scalar>(s, d_input.data(), d_hidden.data(), G, r0, nr, x, h0, y, H, grads.weight_ih,
                                    grads.weight_hh, workspace);
    }
    in_thread_order(thread, team, barrier, [&] {
      sums.add_to(kBias, grads.bias_ih);
      sums.add_to(kBias, grads.bias_hh);
      sums.add_to(kGainIh, ln_grads.gain_ih);
      sums.add_to(kGainHh, ln_grads.gain_hh);
      sums.add_to(kGainCell, ln_grads.gain_cell);
      sums.add_to(kBiasCell, ln_grads.bias_cell);
    });
  });
}

}  // namespace lstmcore
