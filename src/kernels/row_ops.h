#pragma once
// The element-wise work of a decode step on plain f32 rows: norms, rotary
// embedding, the MLP's activation and residual adds. Through libtorch each
// of these is a dispatch and an allocation per token per layer (~100 per
// layer), which on a 12-layer model cost milliseconds a step; here they are
// loops over buffers the caller keeps.
#include <cstddef>

namespace thinkeys {

// out = x / sqrt(mean(x^2) + eps) * w  (RMSNorm)
void rms_norm_row(const float* x, const float* w, int n, float eps, float* out);
// out = (x - mean) / sqrt(var + eps) * w + b, var the biased variance (LayerNorm)
void layer_norm_row(const float* x, const float* w, const float* b, int n, float eps, float* out);

// cos_out[i] = cos(position * inv_freq[i]), likewise sin, i in [0, half).
void rope_angles(float position, const float* inv_freq, int half, float* cos_out, float* sin_out);
// Rotate-half RoPE in place on `heads` vectors of `width` floats, `stride`
// apart: pairs (i, i + width/2) turn by angle i, using cos/sin[0, width/2).
void rope_rotate_half(float* x, int heads, int width, std::size_t stride, const float* cos,
                      const float* sin);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + e^-g)  (SwiGLU)
void silu_mul(const float* gate, const float* up, int n, float* out);
// out[i] = GELU of x[i], tanh approximation: x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
void gelu_tanh(const float* x, int n, float* out);

// x[i] += y[i]
void add_to(float* x, const float* y, int n);

}  // namespace thinkeys
