#include "zebra/model/weights.hpp"

#include <cstring>

#include "zebra/ops/quant/quant.hpp"
#include "zebra/util/error.hpp"

namespace zebra {

namespace {

// Rows of `a` followed directly in memory by the rows of `b` (same dtype, columns and stride).
bool adjacent(const WeightMatrix& a, const WeightMatrix& b) {
  return a.dtype == b.dtype && a.cols == b.cols && a.row_bytes == b.row_bytes && a.row(a.rows) == b.data;
}

template <typename T>
void fuse(LayerWeightViews<T>& w) {
  if (adjacent(w.wq, w.wk) && adjacent(w.wk, w.wv)) {
    w.wqkv = WeightMatrix{w.wq.dtype, w.wq.data, w.wq.rows + w.wk.rows + w.wv.rows, w.wq.cols, w.wq.row_bytes};
  }
  if (adjacent(w.w_gate, w.w_up)) {
    w.w_gate_up =
        WeightMatrix{w.w_gate.dtype, w.w_gate.data, w.w_gate.rows + w.w_up.rows, w.w_gate.cols, w.w_gate.row_bytes};
  }
}

}  // namespace

template <typename T>
ModelWeights<T> weights_of(const ParameterSet<T>& params) {
  const ModelConfig& c = params.config;
  const ParamViews<T>& v = params.views;
  const std::int64_t d = c.d_model, f = c.ffn_dim, qd = c.q_dim(), kvd = c.kv_dim();
  ModelWeights<T> w;
  w.config = c;
  w.config.resolve();
  w.embed = WeightMatrix::dense<T>(v.embed, c.vocab_size, d);
  w.pos_embed = v.pos_embed;
  w.final_norm = v.final_norm;
  w.lm_head = WeightMatrix::dense<T>(v.lm_head, c.vocab_size, d);
  w.layers.resize(v.layers.size());
  for (std::size_t l = 0; l < v.layers.size(); ++l) {
    const LayerWeights<T>& p = v.layers[l];
    LayerWeightViews<T>& o = w.layers[l];
    o.attn_norm = p.attn_norm;
    o.wq = WeightMatrix::dense<T>(p.wq, qd, d);
    o.wk = WeightMatrix::dense<T>(p.wk, kvd, d);
    o.wv = WeightMatrix::dense<T>(p.wv, kvd, d);
    o.wo = WeightMatrix::dense<T>(p.wo, d, qd);
    o.ffn_norm = p.ffn_norm;
    o.w_gate = WeightMatrix::dense<T>(p.w_gate, f, d);
    o.w_up = WeightMatrix::dense<T>(p.w_up, f, d);
    o.w_down = WeightMatrix::dense<T>(p.w_down, d, f);
    fuse(o);
    ZEBRA_CHECK(o.wqkv.rows > 0 && o.w_gate_up.rows > 0, "parameter layout: q|k|v or gate|up are not contiguous");
  }
  return w;
}

const StoredTensor* WeightStore::find(const std::string& name) const {
  for (const StoredTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

StoredTensor* WeightStore::find(const std::string& name) {
  return const_cast<StoredTensor*>(static_cast<const WeightStore&>(*this).find(name));
}

std::size_t WeightStore::bytes() const {
  std::size_t b = 0;
  for (const StoredTensor& t : tensors) b += t.data().size();
  return b;
}

WeightStore store_from_params(const ParameterSet<float>& params, DType matrix_dtype) {
  ZEBRA_CHECK(matrix_dtype == DType::kF32 || matrix_dtype == DType::kBF16 || matrix_dtype == DType::kF16,
              "weights: matrices can be stored as F32, BF16 or F16 here, not ", to_string(matrix_dtype));
  WeightStore store;
  store.config = params.config;
  store.config.resolve();
  for (const TensorInfo& t : params.layout.tensors) {
    StoredTensor s;
    s.name = t.name;
    s.shape = t.shape;
    s.dtype = t.shape.size() == 2 && t.name != "model.embed_positions.weight" ? matrix_dtype : DType::kF32;
    const float* src = params.tensor(t);
    s.bytes.resize(t.numel * dtype_size(s.dtype));
    if (s.dtype == DType::kF32) {
      std::memcpy(s.bytes.data(), src, t.numel * sizeof(float));
    } else {
      auto* dst = reinterpret_cast<std::uint16_t*>(s.bytes.data());
      for (std::size_t i = 0; i < t.numel; ++i) {
        dst[i] = s.dtype == DType::kBF16 ? float_to_bf16(src[i]) : float_to_f16(src[i]);
      }
    }
    store.tensors.push_back(std::move(s));
  }
  return store;
}

namespace {

// The rows of t in `to` (its own dtype, or the repacked layout of quant::repack_row) at dst.
void copy_rows_as(const StoredTensor& t, DType to, std::uint8_t* dst) {
  const std::span<const std::uint8_t> d = t.data();
  if (to == t.dtype) {
    if (!d.empty()) std::memcpy(dst, d.data(), d.size());
    return;
  }
  const std::int64_t rows = t.shape[0], cols = t.shape[1];
  const std::size_t rb = dtype_row_bytes(t.dtype, cols);
  for (std::int64_t r = 0; r < rows; ++r) quant::repack_row(t.dtype, d.data() + rb * r, dst + rb * r, cols);
}

// Moves the named tensors (all 2-D, one dtype and column count, else nothing happens) into one new arena, in
// this order, repacked.
void colocate(WeightStore& s, const std::vector<std::string>& names) {
  std::vector<StoredTensor*> ts;
  for (const std::string& n : names) {
    StoredTensor* t = s.find(n);
    if (t == nullptr || t->shape.size() != 2) return;
    if (!ts.empty() && (t->dtype != ts[0]->dtype || t->shape[1] != ts[0]->shape[1])) return;
    ts.push_back(t);
  }
  std::size_t total = 0;
  for (const StoredTensor* t : ts) total += t->data().size();
  AlignedBuffer<std::uint8_t> arena(total);
  std::size_t at = 0;
  for (StoredTensor* t : ts) {
    const std::size_t size = t->data().size();
    const DType to = quant::repacked_dtype(t->dtype);  // the same bytes per row
    copy_rows_as(*t, to, arena.data() + at);
    t->dtype = to;
    t->bytes = AlignedBuffer<std::uint8_t>();
    t->borrowed = std::span<const std::uint8_t>(arena.data() + at, size);
    at += size;
  }
  s.arenas.push_back(std::move(arena));  // the heap block (and the spans into it) stays where it is
}

const StoredTensor& need(const WeightStore& s, const std::string& name, const std::vector<std::int64_t>& shape) {
  const StoredTensor* t = s.find(name);
  ZEBRA_CHECK(t != nullptr, "weights: tensor '", name, "' is missing");
  ZEBRA_CHECK(t->shape == shape, "weights: tensor '", name, "' has the wrong shape");
  return *t;
}

WeightMatrix matrix(const WeightStore& s, const std::string& name, std::int64_t rows, std::int64_t cols) {
  const StoredTensor& t = need(s, name, {rows, cols});
  const std::size_t rb = dtype_row_bytes(t.dtype, cols);
  ZEBRA_CHECK(t.data().size() == rb * static_cast<std::size_t>(rows), "weights: tensor '", name, "' holds ",
              t.data().size(), " bytes, expected ", rb * static_cast<std::size_t>(rows));
  return WeightMatrix{t.dtype, t.data().data(), rows, cols, rb};
}

const float* vector_f32(const WeightStore& s, const std::string& name, std::vector<std::int64_t> shape) {
  const StoredTensor& t = need(s, name, shape);
  ZEBRA_CHECK(t.dtype == DType::kF32, "weights: tensor '", name, "' must be F32, found ", to_string(t.dtype));
  ZEBRA_CHECK(reinterpret_cast<std::uintptr_t>(t.data().data()) % alignof(float) == 0, "weights: tensor '", name,
              "' is not aligned for F32 reads");
  return reinterpret_cast<const float*>(t.data().data());
}

}  // namespace

void prepare_for_inference(WeightStore& store) {
  for (std::int64_t l = 0; l < store.config.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    colocate(store, {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"});
    colocate(store, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
  }
  for (StoredTensor& t : store.tensors) {
    const DType to = quant::repacked_dtype(t.dtype);
    if (t.shape.size() != 2 || to == t.dtype) continue;
    AlignedBuffer<std::uint8_t> bytes(t.data().size());
    copy_rows_as(t, to, bytes.data());
    t.bytes = std::move(bytes);
    t.borrowed = {};
    t.dtype = to;
  }
}

ModelWeights<float> weights_of(const WeightStore& s) {
  const ModelConfig& c = s.config;
  const std::int64_t d = c.d_model, f = c.ffn_dim, qd = c.q_dim(), kvd = c.kv_dim();
  ModelWeights<float> w;
  w.config = c;
  w.embed = matrix(s, "model.embed_tokens.weight", c.vocab_size, d);
  if (c.pos_embedding == PosEmbedding::kLearned) {
    w.pos_embed = vector_f32(s, "model.embed_positions.weight", {c.max_seq_len, d});
  }
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeightViews<float>& o = w.layers[static_cast<std::size_t>(l)];
    o.attn_norm = vector_f32(s, p + "input_layernorm.weight", {d});
    o.wq = matrix(s, p + "self_attn.q_proj.weight", qd, d);
    o.wk = matrix(s, p + "self_attn.k_proj.weight", kvd, d);
    o.wv = matrix(s, p + "self_attn.v_proj.weight", kvd, d);
    o.wo = matrix(s, p + "self_attn.o_proj.weight", d, qd);
    o.ffn_norm = vector_f32(s, p + "post_attention_layernorm.weight", {d});
    o.w_gate = matrix(s, p + "mlp.gate_proj.weight", f, d);
    o.w_up = matrix(s, p + "mlp.up_proj.weight", f, d);
    o.w_down = matrix(s, p + "mlp.down_proj.weight", d, f);
    fuse(o);
  }
  w.final_norm = vector_f32(s, "model.norm.weight", {d});
  w.lm_head = c.tie_embeddings ? w.embed : matrix(s, "lm_head.weight", c.vocab_size, d);
  return w;
}

template struct ModelWeights<float>;
template struct ModelWeights<double>;
template ModelWeights<float> weights_of<float>(const ParameterSet<float>&);
template ModelWeights<double> weights_of<double>(const ParameterSet<double>&);

}  // namespace zebra
