// The CPU kernels of rev/ops/conv2d.hpp.
//
// Three kernels, picked by the geometry:
//   pointwise  1x1, stride 1, no padding: one GEMM per sample and group, W [Co x Ci] * X [Ci x HW];
//   depthwise  groups == C_in == C_out: a direct kernel on groups of 8 channels interleaved so
//              that each tap is one 8-wide multiply-add; the backward computes dW directly, and
//              dX as the forward of dy with the flipped filter (stride 1) or by scattering;
//   general    im2col over tiles of output positions (bounded scratch) + GEMM; the backward
//              computes dW = dY * cols^T and dX = col2im(W^T * dY).
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "rev/core/op_count.hpp"
#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/gemm.hpp"
#include "rev/ops/conv2d.hpp"

namespace rev::ops::detail {

// y[o, j] += bias[o] for the rows o < rows of a block whose rows start ld elements apart.
template <Scalar T>
void add_bias(T* y, index_t rows, index_t cols, index_t ld, const T* bias) {
  for (index_t o = 0; o < rows; ++o)
    for (index_t j = 0; j < cols; ++j) y[o * ld + j] += bias[o];
}

// ---------------------------------------------------------------------------------------------
// Depthwise (groups == C_in == C_out): one k_h x k_w filter per channel, applied directly.
//
// The planes of `lanes` consecutive channels of one sample are interleaved (register-transposed)
// into a zero-padded buffer P[Hp][Wp][lanes], channel fastest, so that every tap of every output
// pixel is one lanes-wide multiply-add, whatever the stride and however small the plane (the
// networks' depthwise convs run on 7x7 to 56x56 maps with strides 1 to 8). Lanes past the last
// channel hold zeros.

inline constexpr index_t lanes = 8;

// A vector of `lanes` elements (one per interleaved channel), as Eigen packets.
template <class T>
using lane_vec = Eigen::Array<T, lanes, 1>;

template <class T>
Eigen::Map<const lane_vec<T>> lane(const T* p) {
  return Eigen::Map<const lane_vec<T>>(p);
}

template <class T>
Eigen::Map<lane_vec<T>> lane(T* p) {
  return Eigen::Map<lane_vec<T>>(p);
}

// Work per parallel task worth its scheduling (multiply-adds).
inline constexpr index_t conv_task_flops = 1 << 16;

inline index_t grain_for(index_t flops_per_item) {
  return std::max<index_t>(1, conv_task_flops / std::max<index_t>(flops_per_item, 1));
}

// ---------------------------------------------------------------------------------------------
// Pointwise (1x1, stride 1, no padding): per sample and group, Y_g = W_g X_g.

// Calls f(sample, group, c0, cols) in parallel for blocks [c0, c0 + cols) of the hw positions.
template <class F>
void pointwise_blocks(const conv_geometry& g, index_t hw, F&& f) {
  const index_t block = column_block(g.n * g.groups, hw), blocks = (hw + block - 1) / block;
  parallel_for(g.n * g.groups * blocks, grain_for(g.cout_g * g.cin_g * block), [&](index_t b, index_t e) {
    for (index_t t = b; t < e; ++t) {
      const index_t c0 = t % blocks * block;
      f(t / (g.groups * blocks), t / blocks % g.groups, c0, std::min(block, hw - c0));
    }
  });
}

template <Scalar T>
void pointwise_forward(const conv_geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const index_t hw = g.in_plane();
  if (hw == 1) {  // the batch's rows form one matrix: Y [N x Co] = X [N x Ci] W^T, per group
    for (index_t gr = 0; gr < g.groups; ++gr)
      gemm(mat(x + gr * g.cin_g, g.n, g.cin_g, g.c_in), mat_t(w + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g),
           mat(y + gr * g.cout_g, g.n, g.cout_g, g.c_out));
    if (bias)
      for (index_t i = 0; i < g.n; ++i) add_bias(y + i * g.c_out, g.c_out, index_t{1}, index_t{1}, bias);
    return;
  }
  pointwise_blocks(g, hw, [&](index_t i, index_t gr, index_t c0, index_t cols) {
    T* yb = y + (i * g.c_out + gr * g.cout_g) * hw + c0;
    gemm(mat(w + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g),
         mat(x + (i * g.c_in + gr * g.cin_g) * hw + c0, g.cin_g, cols, hw), mat(yb, g.cout_g, cols, hw));
    if (bias) add_bias(yb, g.cout_g, cols, hw, bias + gr * g.cout_g);
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
        gemm(mat(dyg, g.n, g.cout_g, g.c_out), mat(wg, g.cout_g, g.cin_g),
             mat(dx + gr * g.cin_g, g.n, g.cin_g, g.c_in));
    }
    return;
  }
  if (dw) {  // dW_g += sum_n dY_{n,g} X_{n,g}^T
    parallel_accumulate(g.n, g.c_out * g.cin_g, dw, [&](index_t b, index_t e, T* acc) {
      for (index_t i = b; i < e; ++i)
        for (index_t gr = 0; gr < g.groups; ++gr)
          gemm(mat(dy + (i * g.c_out + gr * g.cout_g) * hw, g.cout_g, hw),
               mat_t(x + (i * g.c_in + gr * g.cin_g) * hw, g.cin_g, hw),
               mat(acc + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g), T(1), T(1));
    });
  }
  if (dx)  // dX_{n,g} = W_g^T dY_{n,g}
    pointwise_blocks(g, hw, [&](index_t i, index_t gr, index_t c0, index_t cols) {
      gemm(mat_t(w + gr * g.cout_g * g.cin_g, g.cout_g, g.cin_g),
           mat(dy + (i * g.c_out + gr * g.cout_g) * hw + c0, g.cout_g, cols, hw),
           mat(dx + (i * g.c_in + gr * g.cin_g) * hw + c0, g.cin_g, cols, hw));
    });
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

// Splits the tile row of tap (u, v) for output positions [q0, q1) into runs: run(t, src, n) for
// n positions from tile column t that read the image from plane element src on (every s_w-th
// element), zero(t, n) for n positions that fall into the padding.
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
        gemm(mat(w + gr * g.cout_g * rows, g.cout_g, rows), mat(cols.data(), rows, q1 - q0),
             mat(yb, g.cout_g, q1 - q0, po));
        if (bias) add_bias(yb, g.cout_g, q1 - q0, po, bias + gr * g.cout_g);
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

// Eigen's packets are vector types with alignment attributes, which g++ warns about dropping
// when they are template arguments (PacketBlock<packet, P>); Eigen itself silences this too.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"

// dst[j lanes + l] = src[l stride + j] for j < n, l < lanes: nl rows of src become the first nl
// lanes of n interleaved vectors (lanes past nl are zero). With full groups, in register-
// transposed tiles of Eigen's packets (P x P with P the packet size, when it divides lanes).
template <class T>
void to_lanes(const T* src, index_t stride, index_t nl, index_t n, T* dst) {
  using namespace Eigen::internal;
  using packet = typename packet_traits<T>::type;
  constexpr int P = packet_traits<T>::size;
  index_t j = 0;
  if constexpr (P >= 2 && lanes % P == 0) {
    if (nl == lanes)
      for (; j + P <= n; j += P)
        for (index_t lb = 0; lb < lanes; lb += P) {
          PacketBlock<packet, P> b;
          for (int r = 0; r < P; ++r) b.packet[r] = ploadu<packet>(src + (lb + r) * stride + j);
          ptranspose(b);
          for (int r = 0; r < P; ++r) pstoreu(dst + (j + r) * lanes + lb, b.packet[r]);
        }
  }
  for (; j < n; ++j)
    for (index_t l = 0; l < lanes; ++l) dst[j * lanes + l] = l < nl ? src[l * stride + j] : T(0);
}

// dst[l stride + j] = src[j lanes + l] for j < n, l < nl: the inverse of to_lanes.
template <class T>
void from_lanes(const T* src, index_t n, index_t nl, T* dst, index_t stride) {
  using namespace Eigen::internal;
  using packet = typename packet_traits<T>::type;
  constexpr int P = packet_traits<T>::size;
  index_t j = 0;
  if constexpr (P >= 2 && lanes % P == 0) {
    if (nl == lanes)
      for (; j + P <= n; j += P)
        for (index_t lb = 0; lb < lanes; lb += P) {
          PacketBlock<packet, P> b;
          for (int r = 0; r < P; ++r) b.packet[r] = ploadu<packet>(src + (j + r) * lanes + lb);
          ptranspose(b);
          for (int r = 0; r < P; ++r) pstoreu(dst + (lb + r) * stride + j, b.packet[r]);
        }
  }
  for (; j < n; ++j)
    for (index_t l = 0; l < nl; ++l) dst[l * stride + j] = src[j * lanes + l];
}

#pragma GCC diagnostic pop

struct lanes_layout {
  index_t c, h, w, ho, wo, ph, pw, sh, sw, hp, wp, taps;
  std::vector<index_t> off;  // per tap (u, v): (u d_h Wp + v d_w) lanes

  explicit lanes_layout(const conv_geometry& g)
      : c(g.c_in),
        h(g.h),
        w(g.w),
        ho(g.ho),
        wo(g.wo),
        ph(g.p.pad_h),
        pw(g.p.pad_w),
        sh(g.p.stride_h),
        sw(g.p.stride_w),
        hp(g.h + 2 * index_t{g.p.pad_h}),
        wp(g.w + 2 * index_t{g.p.pad_w}),
        taps(g.taps()) {
    for (index_t u = 0; u < g.kh; ++u)
      for (index_t v = 0; v < g.kw; ++v) off.push_back((u * g.p.dilation_h * wp + v * g.p.dilation_w) * lanes);
  }
  index_t groups() const { return (c + lanes - 1) / lanes; }
  index_t size() const { return hp * wp * lanes; }
  // The first element of the lanes read by output pixel (i, j) at tap (0, 0).
  index_t origin(index_t i, index_t j) const { return (i * sh * wp + j * sw) * lanes; }

  // p = channels [c0, c0 + lanes) of one sample's planes x [C, h, w], interleaved and padded.
  template <class T>
  void load(const T* x, index_t c0, T* p) const {
    std::fill(p, p + ph * wp * lanes, T(0));
    std::fill(p + (ph + h) * wp * lanes, p + size(), T(0));
    const index_t nl = std::min(lanes, c - c0);
    for (index_t y = 0; y < h; ++y) {
      T* row = p + (y + ph) * wp * lanes;
      std::fill(row, row + pw * lanes, T(0));
      to_lanes(x + c0 * h * w + y * w, h * w, nl, w, row + pw * lanes);
      std::fill(row + (pw + w) * lanes, row + wp * lanes, T(0));
    }
  }
  // Planes [c0, c0 + lanes) (those below C) of out [C, rows, cols] = z[rows][cols][lanes],
  // whose rows start `stride` lanes-vectors apart.
  template <class T>
  void store(const T* z, index_t rows, index_t cols, index_t stride, index_t c0, T* out) const {
    const index_t nl = std::min(lanes, c - c0);
    for (index_t i = 0; i < rows; ++i)
      from_lanes(z + i * stride * lanes, cols, nl, out + c0 * rows * cols + i * cols, rows * cols);
  }
  // z[i][j][lanes] = channels [c0, c0 + lanes) of dy [C, ho, wo] (zero past C).
  template <class T>
  void interleave_output(const T* dy, index_t c0, T* z) const {
    to_lanes(dy + c0 * ho * wo, ho * wo, std::min(lanes, c - c0), ho * wo, z);
  }
  // wt[t][lanes] = the weights of channels [c0, c0 + lanes) (zero past C); weight is [C, taps].
  template <class T>
  void interleave_weights(const T* weight, index_t c0, T* wt) const {
    for (index_t t = 0; t < taps; ++t)
      for (index_t l = 0; l < lanes; ++l) wt[t * lanes + l] = c0 + l < c ? weight[(c0 + l) * taps + t] : T(0);
  }
};

// Output pixels q0 .. q0 + J - 1 (row-major over Ho x Wo) of one channel group:
// z[q] = bias + sum_t wt[t] * p[origin(q) + off_t], J independent accumulators.
template <int J, class T>
void lanes_pixels(const lanes_layout& l, const T* p, const T* wt, const T* bias, index_t q0, T* z) {
  lane_vec<T> acc[J];
  const T* src[J];
  for (int jj = 0; jj < J; ++jj) {
    src[jj] = p + l.origin((q0 + jj) / l.wo, (q0 + jj) % l.wo);
    acc[jj] = lane(bias);
  }
  for (index_t t = 0; t < l.taps; ++t) {
    const lane_vec<T> wv = lane(wt + t * lanes);
    const index_t o = l.off[static_cast<std::size_t>(t)];
    for (int jj = 0; jj < J; ++jj) acc[jj] += wv * lane(src[jj] + o);
  }
  for (int jj = 0; jj < J; ++jj) lane(z + (q0 + jj) * lanes) = acc[jj];
}

// All Ho x Wo output pixels of one channel group, 8 at a time.
template <class T>
void lanes_plane(const lanes_layout& l, const T* p, const T* wt, const T* bias, T* z) {
  const index_t n = l.ho * l.wo;
  index_t q = 0;
  for (; q + 8 <= n; q += 8) lanes_pixels<8>(l, p, wt, bias, q, z);
  switch (n - q) {
    case 1: lanes_pixels<1>(l, p, wt, bias, q, z); break;
    case 2: lanes_pixels<2>(l, p, wt, bias, q, z); break;
    case 3: lanes_pixels<3>(l, p, wt, bias, q, z); break;
    case 4: lanes_pixels<4>(l, p, wt, bias, q, z); break;
    case 5: lanes_pixels<5>(l, p, wt, bias, q, z); break;
    case 6: lanes_pixels<6>(l, p, wt, bias, q, z); break;
    case 7: lanes_pixels<7>(l, p, wt, bias, q, z); break;
    default: break;
  }
}

// B taps' contributions to dW: acc[t] += sum over output pixels of dz * p[origin + off_t].
template <int B, class T>
void lanes_weight_grad(const lanes_layout& l, const T* p, const T* dz, const index_t* off, T* acc) {
  lane_vec<T> a[B];
  for (int t = 0; t < B; ++t) a[t].setZero();
  for (index_t i = 0; i < l.ho; ++i)
    for (index_t j = 0; j < l.wo; ++j) {
      const lane_vec<T> d = lane(dz + (i * l.wo + j) * lanes);
      const T* base = p + l.origin(i, j);
      for (int t = 0; t < B; ++t) a[t] += d * lane(base + off[t]);
    }
  for (int t = 0; t < B; ++t) lane(acc + t * lanes) += a[t];
}

template <Scalar T>
void depthwise_forward(const conv_geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const lanes_layout l(g);
  const index_t groups = l.groups(), po = g.out_plane();
  parallel_for(g.n * groups, grain_for(po * l.taps * lanes), [&](index_t b, index_t e) {
    Tensor<T> buf = Tensor<T>::uninitialized({l.size() + po * lanes + (l.taps + 1) * lanes});
    T* p = buf.data();
    T* z = p + l.size();
    T* wt = z + po * lanes;
    T* bv = wt + l.taps * lanes;
    for (index_t k = b; k < e; ++k) {
      const index_t n = k / groups, c0 = k % groups * lanes;
      l.interleave_weights(w, c0, wt);
      for (index_t q = 0; q < lanes; ++q) bv[q] = bias && c0 + q < l.c ? bias[c0 + q] : T(0);
      l.load(x + n * l.c * g.in_plane(), c0, p);
      lanes_plane(l, p, wt, bv, z);
      l.store(z, l.ho, l.wo, l.wo, c0, y + n * l.c * po);
    }
  });
}

template <Scalar T>
void depthwise_backward(const conv_geometry& g, const T* x, const T* w, const T* dy, T* dw, T* dx) {
  // With stride 1, dx is the forward correlation of dy, zero-padded by (k - 1) d - p, with the
  // flipped filter: dx[y, x] = sum_{u, v} w[u, v] dy[y + p - u d, x + p - v d].
  const int flip_h = int(g.kh - 1) * g.p.dilation_h - g.p.pad_h, flip_w = int(g.kw - 1) * g.p.dilation_w - g.p.pad_w;
  const bool flipped = dx && g.p.stride_h == 1 && g.p.stride_w == 1 && flip_h >= 0 && flip_w >= 0;
  const index_t taps = g.taps(), po = g.out_plane();
  if (flipped) {
    conv_geometry f = g;
    f.h = g.ho, f.w = g.wo, f.ho = g.h, f.wo = g.w;
    f.p.pad_h = flip_h, f.p.pad_w = flip_w;
    std::vector<T> wf(static_cast<std::size_t>(g.c_in * taps));
    for (index_t c = 0; c < g.c_in; ++c)
      for (index_t t = 0; t < taps; ++t) wf[static_cast<std::size_t>(c * taps + t)] = w[c * taps + taps - 1 - t];
    depthwise_forward(f, dy, wf.data(), static_cast<const T*>(nullptr), dx);
  }
  const bool scatter = dx && !flipped;
  if (!dw && !scatter) return;
  const lanes_layout l(g);
  // Tasks: (channel group, chunk of samples); each chunk of samples adds its dW into a partial
  // of its own, so that few channel groups still keep every thread busy.
  const index_t groups = l.groups(), chunks = std::min<index_t>(g.n, num_threads());
  Tensor<T> partial({dw ? chunks : 0, g.c_in * taps});
  parallel_for(groups * chunks, grain_for(g.n / chunks * po * taps * lanes), [&](index_t b, index_t e) {
    Tensor<T> buf = Tensor<T>::uninitialized({(scatter ? 2 : 1) * l.size() + po * lanes + 2 * taps * lanes});
    T* dz = buf.data();  // interleaved dy
    T* wt = dz + po * lanes;
    T* acc = wt + taps * lanes;
    T* p = acc + taps * lanes;  // interleaved padded input
    T* dp = p + l.size();       // interleaved padded dx
    for (index_t k = b; k < e; ++k) {
      const index_t c0 = k / chunks * lanes, chunk = k % chunks;
      l.interleave_weights(w, c0, wt);
      std::fill(acc, acc + taps * lanes, T(0));
      for (index_t n = chunk * g.n / chunks; n < (chunk + 1) * g.n / chunks; ++n) {
        l.interleave_output(dy + n * l.c * po, c0, dz);
        if (dw) {  // dW_t = sum over pixels of dz * p[origin + off_t], taps in passes of <= 8
          l.load(x + n * l.c * g.in_plane(), c0, p);
          const index_t passes = (taps + 7) / 8;
          for (index_t pass = 0, t = 0; pass < passes; ++pass) {
            const index_t nb = (taps - t) / (passes - pass);
            const index_t* off = l.off.data() + t;
            T* a = acc + t * lanes;
            switch (nb) {
              case 1: lanes_weight_grad<1>(l, p, dz, off, a); break;
              case 2: lanes_weight_grad<2>(l, p, dz, off, a); break;
              case 3: lanes_weight_grad<3>(l, p, dz, off, a); break;
              case 4: lanes_weight_grad<4>(l, p, dz, off, a); break;
              case 5: lanes_weight_grad<5>(l, p, dz, off, a); break;
              case 6: lanes_weight_grad<6>(l, p, dz, off, a); break;
              case 7: lanes_weight_grad<7>(l, p, dz, off, a); break;
              default: lanes_weight_grad<8>(l, p, dz, off, a); break;
            }
            t += nb;
          }
        }
        if (scatter) {  // the padded dx gathers wt[t] * dz at origin + off_t; its interior is dx
          std::fill(dp, dp + l.size(), T(0));
          // Per output row, tap-major: within one tap the updated positions are distinct, so
          // the updates pipeline instead of waiting on each other, and the k_h padded rows that
          // one output row touches stay in L1.
          const index_t step = l.sw * lanes;
          for (index_t i = 0; i < l.ho; ++i) {
            const T* d = dz + i * l.wo * lanes;
            for (index_t t = 0; t < taps; ++t) {
              const lane_vec<T> wv = lane(wt + t * lanes);
              T* o = dp + l.origin(i, 0) + l.off[static_cast<std::size_t>(t)];
              for (index_t j = 0; j < l.wo; ++j) lane(o + j * step) += wv * lane(d + j * lanes);
            }
          }
          l.store(dp + (l.ph * l.wp + l.pw) * lanes, l.h, l.w, l.wp, c0, dx + n * l.c * g.in_plane());
        }
      }
      if (dw)
        for (index_t t = 0; t < taps; ++t)
          for (index_t q = 0; q < lanes && c0 + q < l.c; ++q)
            partial.data()[chunk * g.c_in * taps + (c0 + q) * taps + t] = acc[t * lanes + q];
    }
  });
  if (dw)
    for (index_t chunk = 0; chunk < chunks; ++chunk)
      for (index_t i = 0; i < g.c_in * taps; ++i) dw[i] += partial.data()[chunk * g.c_in * taps + i];
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

}  // namespace rev::ops::detail

namespace rev::ops::host {

struct conv2d_kernels {
  template <Scalar T>
  static Tensor<T> conv2d(const Tensor<T>& x, const Tensor<T>& w, std::type_identity_t<const Tensor<T>*> bias,
                          const conv2d_params& p) {
    const auto g = detail::conv_check("rev::ops::conv2d", x, w, bias, p);
    Tensor<T> y = Tensor<T>::uninitialized(g.out_shape());
    if (op_counts* c = rev::detail::active_op_counts()) {
      c->conv_macs += y.numel() * w.size(1) * w.size(2) * w.size(3);
      if (bias) c->conv_bias += y.numel();
    }
    if (y.numel() == 0) return y;
    const T* b = bias ? bias->data() : nullptr;
    if (g.depthwise()) detail::depthwise_forward(g, x.data(), w.data(), b, y.data());
    else if (g.pointwise()) detail::pointwise_forward(g, x.data(), w.data(), b, y.data());
    else detail::general_forward(g, x.data(), w.data(), b, y.data());
    return y;
  }

  template <Scalar T>
  static Tensor<T> conv2d_backward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& dy, const conv2d_params& p,
                                   std::type_identity_t<Tensor<T>*> dw, std::type_identity_t<Tensor<T>*> db,
                                   bool need_dx) {
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
};

}  // namespace rev::ops::host
