// The time-loop skeleton every kernel family shares (lstm_sequence.hpp,
// projected_lstm_sequence.hpp, layer_norm_lstm.hpp, gru.hpp), as oneDNN's RNN: one step
// skeleton, one element-wise part per cell. In a pass's team each thread
//   before the loop   packs its gate rows of W_ih and W_hh (GatePanels) and sums the gate
//                     biases its element-wise part adds (fused_gate_bias); backward packs
//                     its columns of W_hh instead (recurrent_columns);
//   at each step      takes the state it continues from (PreviousState), the input
//                     projection a chunk of steps ahead (ProjectionChunks, sequence.hpp),
//                     the recurrent product of its units, the family's element-wise part,
//                     and zeroes its padding rows (zero_padding_rows);
//   backward          starts from the final state's gradient (start_running_gradient)
//                     and, when asked, records the gradient reaching each step's hidden
//                     state (record_hidden_gradient);
//   after backward    adds its share of the bias gradients (add_bias_share), in thread
//                     order where shares of several threads meet in one gradient.
// What a cell computes per unit stays with its family.
#pragma once

#include <algorithm>
#include <initializer_list>

#include "lstmcore/packed_product.hpp"
#include "lstmcore/sequence.hpp"

namespace lstmcore {

// W_ih (gates*hidden, input) and W_hh (gates*hidden, recurrent) of every unit packed
// once, as GatePanels packs a thread's units, for a layer run many times (a prepared
// layer): each pass then views its threads' panels instead of packing them again.
template <typename Scalar>
class PackedGateWeights {
 public:
  using Layout = PanelLayout<Scalar>;

  PackedGateWeights(const GatedWeights<Scalar>& w, Index gates, Index hidden, Index input, Index recurrent)
      : gates_(gates),
        hidden_(hidden),
        input_(input),
        recurrent_(recurrent),
        ih_(gates * Layout::size(hidden, input)),
        hh_(gates * Layout::size(hidden, recurrent)) {
    for (Index gate = 0; gate < gates; ++gate) {
      const Index row = gate * hidden;
      pack_rows_as_columns(w.weight_ih + row * input, input, hidden, input,
                           ih_.data() + gate * Layout::size(hidden, input));
      pack_rows_as_columns(w.weight_hh + row * recurrent, recurrent, hidden, recurrent,
                           hh_.data() + gate * Layout::size(hidden, recurrent));
    }
  }

  // Whether these are the weights of a pass of these sizes.
  bool fits(Index gates, Index hidden, Index input, Index recurrent) const {
    return gates == gates_ && hidden == hidden_ && input == input_ && recurrent == recurrent_;
  }
  const Scalar* ih() const { return ih_.data(); }
  const Scalar* hh() const { return hh_.data(); }

 private:
  Index gates_, hidden_, input_, recurrent_;
  PackedBuffer<Scalar> ih_, hh_;
};

// This thread's rows of W_ih (gates*hidden, input) and W_hh (gates*hidden, recurrent),
// `units` of each gate block, packed once per pass for the products; with `packed`
// false nothing (a pass of a row or two reads W in place: multiply_unpacked). Given the
// layer's PackedGateWeights, a view of its panels of `units`: a thread's units start on a
// panel (split_range aligns them to kWidth), and end on one or at the last unit, so its
// panels hold the same values, zero padding included, as it would pack.
template <typename Scalar>
class GatePanels {
 public:
  using Layout = PanelLayout<Scalar>;

  GatePanels(const GatedWeights<Scalar>& w, Index gates, Index hidden, Index input, Index recurrent, Range units,
             bool packed = true, const PackedGateWeights<Scalar>* all = nullptr) {
    if (all && all->fits(gates, hidden, input, recurrent) && units.begin % Layout::kWidth == 0) {
      const Index first = units.begin / Layout::kWidth;
      ih_size_ = Layout::size(hidden, input);
      hh_size_ = Layout::size(hidden, recurrent);
      ih_ptr_ = all->ih() + first * input * Layout::kWidth;
      hh_ptr_ = all->hh() + first * recurrent * Layout::kWidth;
      return;
    }
    ih_size_ = packed ? Layout::size(units.size(), input) : 0;
    hh_size_ = packed ? Layout::size(units.size(), recurrent) : 0;
    ih_.resize(gates * ih_size_);
    hh_.resize(gates * hh_size_);
    for (Index gate = 0; gate < gates && packed && units.size() > 0; ++gate) {
      const Index row = gate * hidden + units.begin;
      pack_rows_as_columns(w.weight_ih + row * input, input, units.size(), input, ih_.data() + gate * ih_size_);
      pack_rows_as_columns(w.weight_hh + row * recurrent, recurrent, units.size(), recurrent,
                           hh_.data() + gate * hh_size_);
    }
    ih_ptr_ = ih_.data();
    hh_ptr_ = hh_.data();
  }
  GatePanels(const GatePanels&) = delete;
  GatePanels& operator=(const GatePanels&) = delete;

  // Gate k's panel of W_ih starts k * ih_size() values after ih(); as for W_hh.
  const Scalar* ih() const { return ih_ptr_; }
  Index ih_size() const { return ih_size_; }
  const Scalar* hh(Index gate) const { return hh_ptr_ + gate * hh_size_; }
  Index hh_size() const { return hh_size_; }

 private:
  Index ih_size_ = 0, hh_size_ = 0;
  PackedBuffer<Scalar> ih_, hh_;
  const Scalar *ih_ptr_ = nullptr, *hh_ptr_ = nullptr;
};

// bias (gates, units.size()): the bias that gate k adds to the pre-activation of `units`,
// b_ih + b_hh for the first `summed` gates and b_ih alone after (the GRU's n gate keeps
// b_hn inside r * m).
template <typename Scalar>
void fused_gate_bias(const GatedWeights<Scalar>& w, Index gates, Index summed, Index hidden, Range units,
                     Scalar* bias) {
  const Index n = units.size();
  for (Index gate = 0; gate < gates; ++gate) {
    const Index row = gate * hidden + units.begin;
    for (Index j = 0; j < n; ++j) {
      bias[gate * n + j] = gate < summed ? w.bias_ih[row + j] + w.bias_hh[row + j] : w.bias_ih[row + j];
    }
  }
}

// This thread's `columns` of W_hh (rows, width), packed once per backward pass for
// dh_{t-1}[:, columns] = da_t W_hh[:, columns].
template <typename Scalar>
PackedBuffer<Scalar> recurrent_columns(const Scalar* weight_hh, Index rows, Index width, Range columns) {
  PackedBuffer<Scalar> packed(PanelLayout<Scalar>::size(columns.size(), rows));
  if (columns.size() > 0) pack_columns(weight_hh + columns.begin, width, columns.size(), rows, packed.data());
  return packed;
}

// A state (h or c) for the rows of a batch: row b at data + b * stride.
template <typename Scalar>
struct StateRows {
  const Scalar* data;
  Index stride;
  const Scalar* row(Index b) const { return data + b * stride; }
  // Rows from `first` on as a product's operand.
  RowView<Scalar> rows(Index first) const { return {row(first), stride}; }
};

// The state a step continues from (h_{t-1} or c_{t-1}, `width` values a row): the
// previous step's, the initial one's, or, where some rows carry on and others start
// (s.carried), the two gathered row by row into this thread's own (B, width) buffer, so
// that products read one evenly spaced operand. Only a reversed pass with lengths ever
// gathers, at the steps where sequences start, and only it holds a buffer.
template <typename Scalar>
class PreviousState {
 public:
  PreviousState(const SequenceShape& s, Index width)
      : s_(s), width_(width), gathered_(s.reverse && s.batch_sizes ? s.batch * width : 0) {}

  // The state before `step` of the rows in `rows` (those the caller reads): `initial`
  // (B rows) or `later`, the state at time s.time_before(step).
  StateRows<Scalar> at(Index step, StateRows<Scalar> initial, StateRows<Scalar> later, Range rows) {
    const Index carried = s_.carried(step);
    if (carried <= rows.begin) return initial;
    if (carried >= rows.end) return later;
    for (Index b = rows.begin; b < rows.end; ++b) {
      std::copy_n(b < carried ? later.row(b) : initial.row(b), width_, gathered_.data() + b * width_);
    }
    return {gathered_.data(), width_};
  }

 private:
  const SequenceShape& s_;
  Index width_;
  PassBuffer<Scalar> gathered_;
};

// Where a buffer keeps the values of one row of a step: `blocks` column blocks,
// `block_stride` apart, in rows `row_stride` apart (a gate tape row holds one block per
// gate). A null `data` is a buffer the pass does not write (no tape).
template <typename Scalar>
struct RowBlocks {
  Scalar* data;
  Index row_stride;
  Index blocks = 1;
  Index block_stride = 0;
};

// Zeroes `columns` of each block of the rows `padding` in every buffer: what a step
// writes for the rows past the batch alive at its time.
template <typename Scalar>
void zero_padding_rows(Range padding, Range columns, std::initializer_list<RowBlocks<Scalar>> buffers) {
  if (columns.size() <= 0) return;
  for (const RowBlocks<Scalar>& buffer : buffers) {
    for (Index b = padding.begin; buffer.data && b < padding.end; ++b) {
      for (Index block = 0; block < buffer.blocks; ++block) {
        std::fill_n(buffer.data + b * buffer.row_stride + block * buffer.block_stride + columns.begin,
                    columns.size(), Scalar(0));
      }
    }
  }
}

// Backward keeps the running gradient of a state (h_t or c_t) in the caller's gradient of
// the initial state, (rows, width), which it starts as: the gradient of the final state,
// or zero. A sequence that ends before the last processed step keeps it until its own
// last step comes round.
template <typename Scalar>
void start_running_gradient(Scalar* running, const Scalar* final_gradient, Index rows, Index width) {
  if (final_gradient) {
    std::copy_n(final_gradient, rows * width, running);
  } else {
    std::fill_n(running, rows * width, Scalar(0));
  }
}

// Writes dL/dh_t, the whole gradient reaching the hidden state h_t (dy_t plus what came
// back from the later steps, `running`), into `hidden_grads` (T, B, width) time-major, for
// this thread's rows and units of step t; zero on rows past `live_end` (padding: no h_t).
// Called before the cell turns `running` into the gradient of h_{t-1}. The backward's
// sums make this gradient anyway; recording it is how a user sees it vanish over the
// steps (the memory demo), at one store per value, and nothing when hidden_grads is null.
template <typename Scalar>
void record_hidden_gradient(Scalar* hidden_grads, Index t, Index batch, Index width, Range rows, Index live_end,
                            Range units, SequenceView<const Scalar> dy, const Scalar* running) {
  if (!hidden_grads) return;
  const Index n = units.size();
  for (Index b = rows.begin; b < rows.end; ++b) {
    Scalar* out = hidden_grads + (t * batch + b) * width + units.begin;
    if (b >= live_end) {
      std::fill_n(out, n, Scalar(0));
      continue;
    }
    const Scalar* from_above = dy.at(t, b) + units.begin;
    const Scalar* from_later = running + b * width + units.begin;
    for (Index j = 0; j < n; ++j) out[j] = from_above[j] + from_later[j];
  }
}

// Adds this thread's share of a bias gradient, (gates, units.size()) summed over its
// rows, to the gate blocks of `grad` (gates * hidden) at `units`.
template <typename Scalar>
void add_bias_share(const Scalar* share, Index gates, Index hidden, Range units, Scalar* grad) {
  const Index n = units.size();
  for (Index gate = 0; gate < gates; ++gate) {
    for (Index j = 0; j < n; ++j) grad[gate * hidden + units.begin + j] += share[gate * n + j];
  }
}

}  // namespace lstmcore
