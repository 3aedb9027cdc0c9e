#include "io/llama2c_header.h"

#include <array>
#include <cstring>
#include <fstream>

#include "util/error.h"

namespace thinkeys {
namespace {

struct Header {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

constexpr uint32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c's newer export

static_assert(sizeof(Header) == kLlama2cHeaderBytes);

}  // namespace

bool looks_like_llama2c_checkpoint(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  Header h{};
  if (!in.read(reinterpret_cast<char*>(&h), sizeof h)) return false;
  uint32_t magic;
  std::memcpy(&magic, &h, 4);
  if (magic == kVersionedMagic) return true;
  return h.dim > 0 && h.hidden_dim > 0 && h.n_layers > 0 && h.n_heads > 0 && h.n_kv_heads > 0 &&
         h.seq_len > 0 && h.vocab_size != 0;
}

Llama2cHeader parse_llama2c_header(std::span<const std::byte> bytes, std::uint64_t file_size,
                                   const std::string& where) {
  if (bytes.size() < sizeof(Header) || file_size < sizeof(Header))
    throw Error(where + ": truncated llama2.c checkpoint (" + std::to_string(file_size) +
                " bytes, header needs 28)");
  Header h;
  std::memcpy(&h, bytes.data(), sizeof h);
  uint32_t magic;
  std::memcpy(&magic, &h, 4);
  if (magic == kVersionedMagic)
    throw Error(where +
                ": llama2.c versioned export (magic ak42) is not supported; "
                "export with legacy_export (the format run.c reads)");
  const bool shared_classifier = h.vocab_size > 0;
  int64_t vocab = h.vocab_size > 0 ? h.vocab_size : -static_cast<int64_t>(h.vocab_size);
  if (h.dim <= 0 || h.hidden_dim <= 0 || h.n_layers <= 0 || h.n_heads <= 0 || h.n_kv_heads <= 0 ||
      h.seq_len <= 0 || vocab <= 0 || h.dim > (1 << 16) || h.hidden_dim > (1 << 18) ||
      h.n_layers > 1024 || vocab > (1 << 24) || h.seq_len > (1 << 24))
    throw Error(where + ": not a llama2.c checkpoint (implausible header values)");
  if (h.dim % h.n_heads != 0)
    throw Error(where + ": dim " + std::to_string(h.dim) + " not divisible by n_heads " +
                std::to_string(h.n_heads));
  if (h.n_heads % h.n_kv_heads != 0) throw Error(where + ": n_heads not divisible by n_kv_heads");

  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.source_format = "llama2c";
  c.weight_dtype = "float32";
  c.vocab_size = static_cast<int>(vocab);
  c.dim = h.dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.hidden_dim = h.hidden_dim;
  c.max_positions = h.seq_len;
  c.norm = NormKind::RMSNorm;
  c.norm_eps = 1e-5;  // run.c's rmsnorm constant
  c.mlp = MlpKind::SwiGLU;
  c.positions = PositionKind::Rope;
  c.rope_theta = 10000.0;
  c.tied_embeddings = shared_classifier;
  c.bos_id = 1;
  c.eos_id = 2;
  c.validate();

  const int64_t D = c.dim, F = c.hidden_dim, L = c.n_layers, d = c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * d;
  const int64_t rope_table = static_cast<int64_t>(h.seq_len) * d / 2;
  const int64_t floats = vocab * D + L * D + L * D * D + 2 * L * D * kv_dim + L * D * D + L * D +
                         3 * L * D * F + D + 2 * rope_table + (shared_classifier ? 0 : vocab * D);
  const uint64_t expected = sizeof(Header) + static_cast<uint64_t>(floats) * 4;
  if (file_size != expected)
    throw Error(where + ": size " + std::to_string(file_size) + " bytes does not match the " +
                std::to_string(expected) + " bytes its header implies (truncated or not llama2.c)");
  return {c, shared_classifier, expected};
}

Llama2cHeader read_llama2c_header(const std::filesystem::path& file) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) throw Error(file.string() + ": cannot read (" + ec.message() + ")");
  std::array<std::byte, sizeof(Header)> head{};
  std::ifstream in(file, std::ios::binary);
  in.read(reinterpret_cast<char*>(head.data()), head.size());
  const auto got = static_cast<std::size_t>(in.gcount());
  return parse_llama2c_header(std::span<const std::byte>(head.data(), got), size, file.string());
}

}  // namespace thinkeys
