// 2-D convolution (cross-correlation, as PyTorch's conv2d) with stride, zero padding, dilation
// and groups, and its backward pass.
//
//   y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x[n, g*Cg + c, i*s_h - p_h + u*d_h, j*s_w - p_w + v*d_w]
//
// for o in group g (Cg = C_in / groups input channels per group; x is zero outside the image).
// Output extent: floor((H + 2p - d(k-1) - 1) / s) + 1.
//
// Three kernels, picked by the geometry:
//   pointwise  1x1, stride 1, no padding: one GEMM per sample and group, W [Co x Ci] * X [Ci x HW];
//   depthwise  groups == C_in == C_out: a direct kernel over each (sample, channel) plane whose
//              innermost loops run over contiguous output columns;
//   general    im2col over tiles of output positions (bounded scratch) + GEMM; the backward
//              computes dW = dY * cols^T and dX = col2im(W^T * dY).
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/gemm.hpp"

namespace rev::ops {

struct conv2d_params {
  int stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};

namespace detail {

/// floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1
inline index_t conv_out_size(index_t in, index_t k, int stride, int pad, int dilation) {
  return (in + 2 * index_t{pad} - index_t{dilation} * (k - 1) - 1) / stride + 1;
}

// The extents of one convolution, checked.
struct conv_geometry {
  index_t n, c_in, h, w;  // input
  index_t c_out, kh, kw;  // weight
  index_t ho, wo;         // output
  index_t groups, cin_g, cout_g;
  conv2d_params p;

  index_t in_plane() const { return h * w; }
  index_t out_plane() const { return ho * wo; }
  index_t taps() const { return kh * kw; }
  Shape out_shape() const { return {n, c_out, ho, wo}; }
  bool depthwise() const { return groups == c_in && c_in == c_out; }
  bool pointwise() const {
    return kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  }
};

template <Scalar T>
conv_geometry conv_check(const char* who, const Tensor<T>& x, const Tensor<T>& w, std::type_identity_t<const Tensor<T>*> bias,
                         const conv2d_params& p) {
  check<value_error>(p.stride_h >= 1 && p.stride_w >= 1, who, ": stride ", p.stride_h, "x", p.stride_w,
                     " must be at least 1");
  check<value_error>(p.dilation_h >= 1 && p.dilation_w >= 1, who, ": dilation ", p.dilation_h, "x", p.dilation_w,
                     " must be at least 1");
  check<value_error>(p.pad_h >= 0 && p.pad_w >= 0, who, ": padding ", p.pad_h, "x", p.pad_w, " must not be negative");
  check<value_error>(p.groups >= 1, who, ": groups ", p.groups, " must be at least 1");
  expect_rank(x, 4, who, "input");
  expect_rank(w, 4, who, "weight");
  conv_geometry g{};
  g.p = p;
  g.n = x.size(0), g.c_in = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.c_out = w.size(0), g.kh = w.size(2), g.kw = w.size(3);
  g.groups = p.groups;
  check<shape_error>(g.c_out >= 1 && w.size(1) >= 1 && g.kh >= 1 && g.kw >= 1, who, ": weight has extents ", w.shape(),
                     ", expected positive extents [C_out, C_in/groups, kh, kw]");
  check<shape_error>(g.c_out % g.groups == 0, who, ": weight has ", g.c_out, " output channels, not divisible by groups ",
                     g.groups);
  check<shape_error>(g.c_in % g.groups == 0, who, ": input has ", g.c_in, " channels, not divisible by groups ", g.groups);
  check<shape_error>(g.c_in == w.size(1) * g.groups, who, ": input has ", g.c_in, " channels, expected ",
                     w.size(1) * g.groups, " (weight ", w.shape(), ", groups ", g.groups, ")");
  g.cin_g = g.c_in / g.groups;
  g.cout_g = g.c_out / g.groups;
  const index_t span_h = index_t{p.dilation_h} * (g.kh - 1) + 1, span_w = index_t{p.dilation_w} * (g.kw - 1) + 1;
  check<shape_error>(span_h <= g.h + 2 * index_t{p.pad_h} && span_w <= g.w + 2 * index_t{p.pad_w}, who, ": kernel ", g.kh,
                     "x", g.kw, " with dilation ", p.dilation_h, "x", p.dilation_w, " spans ", span_h, "x", span_w,
                     ", larger than the padded input ", g.h + 2 * index_t{p.pad_h}, "x", g.w + 2 * index_t{p.pad_w},
                     " (input ", x.shape(), ", padding ", p.pad_h, "x", p.pad_w, ")");
  if (bias) expect_shape(*bias, Shape{g.c_out}, who, "bias");
  g.ho = conv_out_size(g.h, g.kh, p.stride_h, p.pad_h, p.dilation_h);
  g.wo = conv_out_size(g.w, g.kw, p.stride_w, p.pad_w, p.dilation_w);
  return g;
}

// Work per parallel task worth its scheduling (multiply-adds).
inline constexpr index_t conv_task_flops = 1 << 16;

inline index_t grain_for(index_t flops_per_item) {
  return std::max<index_t>(1, conv_task_flops / std::max<index_t>(flops_per_item, 1));
}

// ---------------------------------------------------------------------------------------------
// Pointwise (1x1, stride 1, no padding): per sample and group, Y_g = W_g X_g.

template <Scalar T>
void pointwise_forward(const conv_geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const index_t hw = g.in_plane();
  if (hw == 1) {  // the batch's rows form one matrix: Y [N x Co] = X [N x Ci] W^T, per group
    for (index_t gr = 0; gr < g.groups; ++gr)
      gemm(mat(x + gr * g.cin_g, g.n, g.cin_g, g.c_in), mat_t(w + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g),
           mat(y + gr * g.cout_g, g.n, g.cout_g, g.c_out));
    if (bias)
      for (index_t i = 0; i < g.n; ++i)
        for (index_t o = 0; o < g.c_out; ++o) y[i * g.c_out + o] += bias[o];
    return;
  }
  const index_t block = column_block(g.n * g.groups, hw);
  const index_t blocks = (hw + block - 1) / block;
  parallel_for(g.n * g.groups * blocks, grain_for(g.cout_g * g.cin_g * block), [&](index_t b, index_t e) {
    for (index_t t = b; t < e; ++t) {
      const index_t i = t / (g.groups * blocks), gr = t / blocks % g.groups, c0 = t % blocks * block;
      const index_t cols = std::min(block, hw - c0);
      T* yb = y + (i * g.c_out + gr * g.cout_g) * hw + c0;
      gemm(mat(w + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g), mat(x + (i * g.c_in + gr * g.cin_g) * hw + c0, g.cin_g, cols, hw),
           mat(yb, g.cout_g, cols, hw));
      if (bias)
        for (index_t o = 0; o < g.cout_g; ++o) {
          const T bo = bias[gr * g.cout_g + o];
          for (index_t j = 0; j < cols; ++j) yb[o * hw + j] += bo;
        }
    }
  });
}

template <Scalar T>
void pointwise_backward(const conv_geometry& g, const T* x, const T* w, const T* dy, T* dw, T* dx) {
  const index_t hw = g.in_plane();
  if (hw == 1) {
    for (index_t gr = 0; gr < g.groups; ++gr) {
      const T* dyg = dy + gr * g.cout_g;
      const T* wg = w + gr * g.cout_g * g.cin_g;
      if (dw)  // dW_g += dY_g^T X_g
        gemm(mat_t(dyg, g.n, g.cout_g, g.c_out), mat(x + gr * g.cin_g, g.n, g.cin_g, g.c_in),
             mat(dw + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g), T(1), T(1));
      if (dx)  // dX_g = dY_g W_g
        gemm(mat(dyg, g.n, g.cout_g, g.c_out), mat(wg, g.cout_g, g.cin_g), mat(dx + gr * g.cin_g, g.n, g.cin_g, g.c_in));
    }
    return;
  }
  if (dw) {  // dW_g += sum_n dY_{n,g} X_{n,g}^T
    parallel_accumulate(g.n, g.c_out * g.cin_g, dw, [&](index_t b, index_t e, T* acc) {
      for (index_t i = b; i < e; ++i)
        for (index_t gr = 0; gr < g.groups; ++gr)
          gemm(mat(dy + (i * g.c_out + gr * g.cout_g) * hw, g.cout_g, hw),
               mat_t(x + (i * g.c_in + gr * g.cin_g) * hw, g.cin_g, hw), mat(acc + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g),
               T(1), T(1));
    });
  }
  if (dx) {  // dX_{n,g} = W_g^T dY_{n,g}
    const index_t block = column_block(g.n * g.groups, hw);
    const index_t blocks = (hw + block - 1) / block;
    parallel_for(g.n * g.groups * blocks, grain_for(g.cout_g * g.cin_g * block), [&](index_t b, index_t e) {
      for (index_t t = b; t < e; ++t) {
        const index_t i = t / (g.groups * blocks), gr = t / blocks % g.groups, c0 = t % blocks * block;
        const index_t cols = std::min(block, hw - c0);
        gemm(mat_t(w + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g), mat(dy + (i * g.c_out + gr * g.cout_g) * hw + c0, g.cout_g, cols, hw),
             mat(dx + (i * g.c_in + gr * g.cin_g) * hw + c0, g.cin_g, cols, hw));
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// General: im2col over tiles of output positions, then GEMM.
//
// cols[(c * kh + u) * kw + v][q] = x[c, i*s_h - p_h + u*d_h, j*s_w - p_w + v*d_w] for the output
// positions q = i * wo + j of one tile (0 outside the image).

// The output columns j in [j0, j1) whose input column j*s + off lies in [0, w): [lo, hi).
inline void valid_range(index_t j0, index_t j1, index_t off, index_t s, index_t w, index_t& lo, index_t& hi) {
  lo = off >= 0 ? j0 : std::max(j0, (-off + s - 1) / s);
  hi = w - 1 - off < 0 ? j0 : std::min(j1, (w - 1 - off) / s + 1);
  lo = std::min(lo, j1);
  hi = std::max(hi, lo);
}

// Calls f(dst, src, j0, n, sw) for each run of a tile row that reads the image (src = the input
// row, dst = the tile row at output column j0, n columns, input column j*sw + off) and
// zero(dst, n) for runs outside it.
template <class Run, class Zero>
void for_each_tile_run(const conv_geometry& g, index_t q0, index_t q1, index_t u, index_t v, Run&& run, Zero&& zero) {
  const index_t sh = g.p.stride_h, sw = g.p.stride_w;
  const index_t off_w = v * g.p.dilation_w - g.p.pad_w;
  for (index_t q = q0; q < q1;) {
    const index_t i = q / g.wo, j0 = q % g.wo, j1 = std::min(g.wo, j0 + (q1 - q));
    const index_t t0 = q - q0;
    const index_t iy = i * sh - g.p.pad_h + u * g.p.dilation_h;
    if (iy < 0 || iy >= g.h) {
      zero(t0, j1 - j0);
    } else {
      index_t lo, hi;
      valid_range(j0, j1, off_w, sw, g.w, lo, hi);
      if (lo > j0) zero(t0, lo - j0);
      if (hi > lo) run(t0 + (lo - j0), iy * g.w + lo * sw + off_w, hi - lo);
      if (j1 > hi) zero(t0 + (hi - j0), j1 - hi);
    }
    q += j1 - j0;
  }
}

template <Scalar T>
void im2col(const conv_geometry& g, const T* xg, index_t q0, index_t q1, T* cols) {
  const index_t tile = q1 - q0, sw = g.p.stride_w, plane = g.in_plane();
  for (index_t c = 0; c < g.cin_g; ++c)
    for (index_t u = 0; u < g.kh; ++u)
      for (index_t v = 0; v < g.kw; ++v) {
        T* row = cols + ((c * g.kh + u) * g.kw + v) * tile;
        const T* xc = xg + c * plane;
        for_each_tile_run(
            g, q0, q1, u, v,
            [&](index_t t, index_t src, index_t n) {
              if (sw == 1) std::memcpy(row + t, xc + src, static_cast<std::size_t>(n) * sizeof(T));
              else
                for (index_t j = 0; j < n; ++j) row[t + j] = xc[src + j * sw];
            },
            [&](index_t t, index_t n) { std::fill(row + t, row + t + n, T(0)); });
      }
}

// dx_g += the columns scattered back to the image (the adjoint of im2col).
template <Scalar T>
void col2im(const conv_geometry& g, const T* cols, index_t q0, index_t q1, T* dxg) {
  const index_t tile = q1 - q0, sw = g.p.stride_w, plane = g.in_plane();
  for (index_t c = 0; c < g.cin_g; ++c)
    for (index_t u = 0; u < g.kh; ++u)
      for (index_t v = 0; v < g.kw; ++v) {
        const T* row = cols + ((c * g.kh + u) * g.kw + v) * tile;
        T* dxc = dxg + c * plane;
        for_each_tile_run(
            g, q0, q1, u, v,
            [&](index_t t, index_t dst, index_t n) {
              for (index_t j = 0; j < n; ++j) dxc[dst + j * sw] += row[t + j];
            },
            [](index_t, index_t) {});
      }
}

// Output positions per tile: the tile's columns take about 256 KiB (half of a typical L2).
template <Scalar T>
index_t im2col_tile(const conv_geometry& g) {
  const index_t rows = g.cin_g * g.taps();
  const index_t tile = std::max<index_t>(64, (index_t{1} << 18) / (rows * index_t{sizeof(T)})) / 16 * 16;
  return std::min(tile, g.out_plane());
}

template <Scalar T>
void general_forward(const conv_geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const index_t po = g.out_plane(), rows = g.cin_g * g.taps();
  const index_t tile = im2col_tile<T>(g), tiles = (po + tile - 1) / tile;
  parallel_for(g.n * tiles, grain_for(g.c_out * rows * tile), [&](index_t b, index_t e) {
    Tensor<T> cols = Tensor<T>::uninitialized({rows * tile});
    for (index_t t = b; t < e; ++t) {
      const index_t i = t / tiles, q0 = t % tiles * tile, q1 = std::min(po, q0 + tile);
      for (index_t gr = 0; gr < g.groups; ++gr) {
        im2col(g, x + (i * g.c_in + gr * g.cin_g) * g.in_plane(), q0, q1, cols.data());
        T* yb = y + (i * g.c_out + gr * g.cout_g) * po + q0;
        gemm(mat(w + gr * g.cout_g * rows, g.cout_g, rows), mat(cols.data(), rows, q1 - q0), mat(yb, g.cout_g, q1 - q0, po));
        if (bias)
          for (index_t o = 0; o < g.cout_g; ++o) {
            const T bo = bias[gr * g.cout_g + o];
            for (index_t j = 0; j < q1 - q0; ++j) yb[o * po + j] += bo;
          }
      }
    }
  });
}

template <Scalar T>
void general_backward(const conv_geometry& g, const T* x, const T* w, const T* dy, T* dw, T* dx) {
  const index_t po = g.out_plane(), rows = g.cin_g * g.taps();
  const index_t tile = im2col_tile<T>(g), tiles = (po + tile - 1) / tile;
  // Samples are the unit of parallel work: col2im of two tiles of one sample may overlap.
  auto samples = [&](index_t b, index_t e, T* dw_acc) {
    Tensor<T> cols = Tensor<T>::uninitialized({rows * tile});
    for (index_t i = b; i < e; ++i)
      for (index_t k = 0; k < tiles; ++k) {
        const index_t q0 = k * tile, q1 = std::min(po, q0 + tile), n = q1 - q0;
        for (index_t gr = 0; gr < g.groups; ++gr) {
          const auto dyb = mat(dy + (i * g.c_out + gr * g.cout_g) * po + q0, g.cout_g, n, po);
          if (dw_acc) {  // dW_g += dY_tile cols^T
            im2col(g, x + (i * g.c_in + gr * g.cin_g) * g.in_plane(), q0, q1, cols.data());
            gemm(dyb, mat_t(cols.data(), rows, n), mat(dw_acc + gr * g.cout_g * rows, g.cout_g, rows), T(1), T(1));
          }
          if (dx) {  // cols = W_g^T dY_tile, scattered back
            gemm(mat_t(w + gr * g.cout_g * rows, g.cout_g, rows), dyb, mat(cols.data(), rows, n));
            col2im(g, cols.data(), q0, q1, dx + (i * g.c_in + gr * g.cin_g) * g.in_plane());
          }
        }
      }
  };
  if (dw) parallel_accumulate(g.n, g.c_out * rows, dw, samples);
  else parallel_for(g.n, 1, [&](index_t b, index_t e) { samples(b, e, nullptr); });
}

// ---------------------------------------------------------------------------------------------
// Depthwise (groups == C_in == C_out): one k_h x k_w filter per channel.
//
// Each input plane is first copied into a zero-padded scratch plane whose rows are split into
// s_w phases (phase r holds padded columns r, r + s_w, r + 2 s_w, ...). Tap (u, v) of output row i
// then reads phase (v d_w) mod s_w of padded row i s_h + u d_h, from column floor(v d_w / s_w) on,
// contiguously for all output columns j: the inner loops are unit-stride and vectorise.

struct phased_plane {
  index_t rows, phase_len, row_stride;  // padded rows; elements per phase; elements per padded row
  index_t pad_h, pad_w, stride_w;

  explicit phased_plane(const conv_geometry& g)
      : rows(g.h + 2 * index_t{g.p.pad_h}),
        phase_len((g.w + 2 * index_t{g.p.pad_w} + g.p.stride_w - 1) / g.p.stride_w),
        row_stride(g.p.stride_w * phase_len),
        pad_h(g.p.pad_h),
        pad_w(g.p.pad_w),
        stride_w(g.p.stride_w) {}
  index_t size() const { return rows * row_stride; }
  // Where padded column c of a row lies.
  index_t column(index_t c) const { return c % stride_w * phase_len + c / stride_w; }

  template <class T>
  void load(const T* src, index_t h, index_t w, T* dst) const {
    std::fill(dst, dst + pad_h * row_stride, T(0));
    std::fill(dst + (pad_h + h) * row_stride, dst + rows * row_stride, T(0));
    for (index_t y = 0; y < h; ++y) {
      T* row = dst + (y + pad_h) * row_stride;
      const T* s = src + y * w;
      if (stride_w == 1) {
        std::fill(row, row + pad_w, T(0));
        std::copy(s, s + w, row + pad_w);
        std::fill(row + pad_w + w, row + row_stride, T(0));
      } else {
        for (index_t c = 0; c < row_stride; ++c) {
          const index_t x = c - pad_w;
          row[column(c)] = x >= 0 && x < w ? s[x] : T(0);
        }
      }
    }
  }
  // dst[y, x] = the padded plane's element (y + pad_h, x + pad_w).
  template <class T>
  void store(const T* src, index_t h, index_t w, T* dst) const {
    for (index_t y = 0; y < h; ++y) {
      const T* row = src + (y + pad_h) * row_stride;
      for (index_t x = 0; x < w; ++x) dst[y * w + x] = row[column(x + pad_w)];
    }
  }
};

// out[j] += sum_{t < B} wv[t] * src[t][j] for j < n: B taps per pass over the output row.
template <int B, class T>
void taps_axpy(T* __restrict out, const T* const* src, const T* wv, index_t n) {
  const T* s[B];
  T c[B];
  for (int t = 0; t < B; ++t) s[t] = src[t], c[t] = wv[t];
  for (index_t j = 0; j < n; ++j) {
    T acc = out[j];
    for (int t = 0; t < B; ++t) acc += c[t] * s[t][j];
    out[j] = acc;
  }
}

template <class T>
void taps_accumulate(T* out, const T* const* src, const T* wv, index_t taps, index_t n) {
  index_t t = 0;
  for (; t + 4 <= taps; t += 4) taps_axpy<4>(out, src + t, wv + t, n);
  switch (taps - t) {
    case 3: taps_axpy<3>(out, src + t, wv + t, n); break;
    case 2: taps_axpy<2>(out, src + t, wv + t, n); break;
    case 1: taps_axpy<1>(out, src + t, wv + t, n); break;
    default: break;
  }
}

// acc[t][j] += dy[j] * src[t][j] for j < n: the per-column partial sums of dW's taps.
template <int B, class T>
void taps_products(T* const* acc, const T* const* src, const T* __restrict dy, index_t n) {
  T* a[B];
  const T* s[B];
  for (int t = 0; t < B; ++t) a[t] = acc[t], s[t] = src[t];
  for (index_t j = 0; j < n; ++j) {
    const T d = dy[j];
    for (int t = 0; t < B; ++t) a[t][j] += d * s[t][j];
  }
}

template <class T>
void taps_products(T* const* acc, const T* const* src, const T* dy, index_t taps, index_t n) {
  index_t t = 0;
  for (; t + 2 <= taps; t += 2) taps_products<2>(acc + t, src + t, dy, n);
  if (t < taps) taps_products<1>(acc + t, src + t, dy, n);
}

// Tap (u, v)'s offset in the phased plane, relative to the start of padded row i s_h.
inline void tap_offsets(const conv_geometry& g, const phased_plane& pp, index_t* off) {
  for (index_t u = 0; u < g.kh; ++u)
    for (index_t v = 0; v < g.kw; ++v) off[u * g.kw + v] = u * g.p.dilation_h * pp.row_stride + pp.column(v * g.p.dilation_w);
}

// y[plane] = bias + the depthwise correlation of one padded, phased input plane.
template <class T>
void depthwise_plane(const conv_geometry& g, const phased_plane& pp, const index_t* off, const T* padded,
                     const T* wc, T bias, T* yp) {
  const index_t taps = g.taps();
  const T* src[64];
  for (index_t i = 0; i < g.ho; ++i) {
    T* out = yp + i * g.wo;
    std::fill(out, out + g.wo, bias);
    const T* row = padded + i * g.p.stride_h * pp.row_stride;
    for (index_t t0 = 0; t0 < taps; t0 += 64) {
      const index_t nt = std::min<index_t>(64, taps - t0);
      for (index_t t = 0; t < nt; ++t) src[t] = row + off[t0 + t];
      taps_accumulate(out, src, wc + t0, nt, g.wo);
    }
  }
}

template <Scalar T>
void depthwise_forward(const conv_geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const phased_plane pp(g);
  std::vector<index_t> off(static_cast<std::size_t>(g.taps()));
  tap_offsets(g, pp, off.data());
  const index_t planes = g.n * g.c_in;
  parallel_for(planes, grain_for(g.out_plane() * g.taps()), [&](index_t b, index_t e) {
    Tensor<T> padded = Tensor<T>::uninitialized({pp.size()});
    for (index_t k = b; k < e; ++k) {
      const index_t c = k % g.c_in;
      pp.load(x + k * g.in_plane(), g.h, g.w, padded.data());
      depthwise_plane(g, pp, off.data(), padded.data(), w + c * g.taps(), bias ? bias[c] : T(0), y + k * g.out_plane());
    }
  });
}

template <Scalar T>
void depthwise_backward(const conv_geometry& g, const T* x, const T* w, const T* dy, T* dw, T* dx) {
  const phased_plane pp(g);
  std::vector<index_t> off(static_cast<std::size_t>(g.taps()));
  tap_offsets(g, pp, off.data());
  const index_t taps = g.taps(), po = g.out_plane();
  if (dw) {  // dW[c, t] += sum_{n, i, j} dy[n, c, i, j] * padded x[n, c] at tap t of (i, j)
    parallel_for(g.c_in, grain_for(g.n * po * taps), [&](index_t b, index_t e) {
      Tensor<T> padded = Tensor<T>::uninitialized({pp.size()});
      Tensor<T> acc = Tensor<T>::uninitialized({taps * g.wo});
      std::vector<T*> a(static_cast<std::size_t>(taps));
      std::vector<const T*> src(static_cast<std::size_t>(taps));
      for (index_t t = 0; t < taps; ++t) a[static_cast<std::size_t>(t)] = acc.data() + t * g.wo;
      for (index_t c = b; c < e; ++c) {
        acc.fill(T(0));
        for (index_t i = 0; i < g.n; ++i) {
          pp.load(x + (i * g.c_in + c) * g.in_plane(), g.h, g.w, padded.data());
          const T* dyp = dy + (i * g.c_in + c) * po;
          for (index_t r = 0; r < g.ho; ++r) {
            const T* row = padded.data() + r * g.p.stride_h * pp.row_stride;
            for (index_t t = 0; t < taps; ++t) src[static_cast<std::size_t>(t)] = row + off[static_cast<std::size_t>(t)];
            taps_products(a.data(), src.data(), dyp + r * g.wo, taps, g.wo);
          }
        }
        for (index_t t = 0; t < taps; ++t) {
          T s = 0;
          for (index_t j = 0; j < g.wo; ++j) s += acc.data()[t * g.wo + j];
          dw[c * taps + t] += s;
        }
      }
    });
  }
  if (dx) {  // the padded dx plane gathers w[t] * dy[i, j] at tap t of (i, j); its interior is dx
    parallel_for(g.n * g.c_in, grain_for(po * taps), [&](index_t b, index_t e) {
      Tensor<T> padded = Tensor<T>::uninitialized({pp.size()});
      for (index_t k = b; k < e; ++k) {
        const index_t c = k % g.c_in;
        const T* wc = w + c * taps;
        const T* dyp = dy + k * po;
        padded.fill(T(0));
        for (index_t r = 0; r < g.ho; ++r) {
          T* row = padded.data() + r * g.p.stride_h * pp.row_stride;
          const T* d = dyp + r * g.wo;
          for (index_t t = 0; t < taps; ++t) {
            T* o = row + off[static_cast<std::size_t>(t)];
            const T wt = wc[t];
            for (index_t j = 0; j < g.wo; ++j) o[j] += wt * d[j];
          }
        }
        pp.store(padded.data(), g.h, g.w, dx + k * g.in_plane());
      }
    });
  }
}

// db[o] += sum over samples and positions of dy[n, o, ...]
template <Scalar T>
void bias_backward(const conv_geometry& g, const T* dy, T* db) {
  const index_t po = g.out_plane();
  parallel_for(g.c_out, grain_for(g.n * po), [&](index_t b, index_t e) {
    for (index_t o = b; o < e; ++o) {
      T s = 0;
      for (index_t i = 0; i < g.n; ++i) {
        const T* p = dy + (i * g.c_out + o) * po;
        for (index_t j = 0; j < po; ++j) s += p[j];
      }
      db[o] += s;
    }
  });
}

}  // namespace detail

/// y = conv2d(x, w) + bias. x [N, C_in, H, W], w [C_out, C_in/groups, kh, kw], bias [C_out] or
/// nullptr; zero padding. Returns [N, C_out, Ho, Wo].
template <Scalar T>
Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& w, std::type_identity_t<const Tensor<T>*> bias, const conv2d_params& p) {
  const auto g = detail::conv_check("rev::ops::conv2d", x, w, bias, p);
  Tensor<T> y = Tensor<T>::uninitialized(g.out_shape());
  if (y.numel() == 0) return y;
  const T* b = bias ? bias->data() : nullptr;
  if (g.depthwise()) detail::depthwise_forward(g, x.data(), w.data(), b, y.data());
  else if (g.pointwise()) detail::pointwise_forward(g, x.data(), w.data(), b, y.data());
  else detail::general_forward(g, x.data(), w.data(), b, y.data());
  return y;
}

/// The backward of conv2d given dy = dL/dy [N, C_out, Ho, Wo]. Returns dL/dx (an empty tensor
/// when need_dx is false); ADDS dL/dw into *dw and dL/dbias into *db when they are non-null.
template <Scalar T>
Tensor<T> conv2d_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, const conv2d_params& p,
                          std::type_identity_t<Tensor<T>*> dw, std::type_identity_t<Tensor<T>*> db, bool need_dx = true) {
  constexpr const char* who = "rev::ops::conv2d_backward";
  const auto g = detail::conv_check(who, x, w, nullptr, p);
  expect_shape(dy, g.out_shape(), who, "output gradient");
  if (dw) expect_shape(*dw, w.shape(), who, "weight gradient");
  if (db) expect_shape(*db, Shape{g.c_out}, who, "bias gradient");
  // col2im accumulates into dx; the other kernels write every element.
  const bool general = !g.depthwise() && !g.pointwise();
  Tensor<T> dx = !need_dx ? Tensor<T>() : general ? Tensor<T>(x.shape()) : Tensor<T>::uninitialized(x.shape());
  if (dy.numel() == 0) return dx;
  T* dwp = dw ? dw->data() : nullptr;
  T* dxp = need_dx ? dx.data() : nullptr;
  if (general) detail::general_backward(g, x.data(), w.data(), dy.data(), dwp, dxp);
  else if (g.depthwise()) detail::depthwise_backward(g, x.data(), w.data(), dy.data(), dwp, dxp);
  else detail::pointwise_backward(g, x.data(), w.data(), dy.data(), dwp, dxp);
  if (db) detail::bias_backward(g, dy.data(), db->data());
  return dx;
}

}  // namespace rev::ops
