#include "train/trainable.h"

#include <functional>

#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {
namespace {

// Visits every canonical weight slot with its name and whether it belongs to
// the query/key side. The tied head is skipped (it is tok_emb).
void for_each_weight(Model& m,
                     const std::function<void(const std::string&, at::Tensor&, bool qk)>& fn) {
  auto& w = m.weights;
  fn("tok_emb", w.tok_emb, false);
  fn("pos_emb", w.pos_emb, false);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    auto& L = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    fn(p + "attn_norm", L.attn_norm, false);
    fn(p + "attn_norm_bias", L.attn_norm_bias, false);
    fn(p + "wq", L.wq, true);
    fn(p + "bq", L.bq, true);
    fn(p + "wk", L.wk, true);
    fn(p + "bk", L.bk, true);
    fn(p + "k_down", L.k_down, true);
    fn(p + "q_down", L.q_down, true);
    fn(p + "k_up", L.k_up, true);
    fn(p + "kv_norm", L.kv_norm, false);  // MLA: the latent also carries the values
    fn(p + "kv_up", L.kv_up, false);
    fn(p + "k_res_down", L.k_res_down, true);
    fn(p + "k_res_up", L.k_res_up, true);
    fn(p + "wv", L.wv, false);
    fn(p + "v_res_down", L.v_res_down, false);
    fn(p + "v_res_up", L.v_res_up, false);
    fn(p + "bv", L.bv, false);
    fn(p + "wo", L.wo, false);
    fn(p + "bo", L.bo, false);
    fn(p + "mlp_norm", L.mlp_norm, false);
    fn(p + "mlp_norm_bias", L.mlp_norm_bias, false);
    fn(p + "w_gate", L.w_gate, false);
    fn(p + "b_gate", L.b_gate, false);
    fn(p + "w_up", L.w_up, false);
    fn(p + "b_up", L.b_up, false);
    fn(p + "w_down", L.w_down, false);
    fn(p + "b_down", L.b_down, false);
  }
  fn("final_norm", w.final_norm, false);
  fn("final_norm_bias", w.final_norm_bias, false);
  if (!m.config.tied_embeddings) fn("lm_head", w.lm_head, false);
}

}  // namespace

TrainScope parse_train_scope(const std::string& s) {
  static constexpr EnumName<TrainScope> kNames[] = {{TrainScope::All, "all"},
                                                    {TrainScope::QK, "qk"}};
  return parse_enum<TrainScope>(kNames, s, "training scope");
}

std::vector<NamedParameter> prepare_for_training(Model& model, TrainScope scope) {
  if (scope == TrainScope::QK && model.config.is_mla())
    throw Error("--train qk is not defined for MLA: its cached latent feeds keys and values alike");
  at::NoGradGuard no_grad;
  std::vector<NamedParameter> out;
  for_each_weight(model, [&](const std::string& name, at::Tensor& t, bool qk) {
    if (!t.defined()) return;
    // Own storage: a view into a fused tensor cannot be an autograd leaf
    // independent of its siblings.
    t = t.detach().clone(at::MemoryFormat::Contiguous);
    bool train = scope == TrainScope::All || qk;
    t.set_requires_grad(train);
    out.push_back({name, t, train});
  });
  for (auto& L : model.weights.layers) {
    L.wqkv = L.bqkv = L.w_gate_up = L.b_gate_up = at::Tensor();
  }
  if (model.config.tied_embeddings) model.weights.lm_head = model.weights.tok_emb;
  return out;
}

std::vector<at::Tensor> trainable_tensors(const std::vector<NamedParameter>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params)
    if (p.trainable) out.push_back(p.tensor);
  return out;
}

Model inference_model(const Model& trained) {
  at::NoGradGuard no_grad;
  Model m;
  m.config = trained.config;
  m.weights = trained.weights;  // shallow: tensors are replaced below
  for_each_weight(m, [](const std::string&, at::Tensor& t, bool) {
    if (t.defined()) t = t.detach().clone(at::MemoryFormat::Contiguous);
  });
  for (auto& L : m.weights.layers) {
    L.wqkv = L.bqkv = L.w_gate_up = L.b_gate_up = at::Tensor();
    if (L.rope_inv_freq.defined()) L.rope_inv_freq = L.rope_inv_freq.clone();
  }
  m.finalize();
  return m;
}

}  // namespace thinkeys
