// The CPU kernels of rev/ops/rel_pos.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "rev/core/parallel.hpp"
#include "rev/core/tensor.hpp"
#include "rev/cpu/eigen.hpp"
#include "rev/ops/rel_pos.hpp"

namespace rev::ops::host {

struct rel_pos_kernels {
  template <Scalar T>
  static Tensor<T> rel_pos_lookup(const Tensor<T>& table, index_t q, index_t k) {
    constexpr const char* who = "rev::ops::rel_pos_lookup";
    expect_rank(table, 2, who, "table");
    const auto taps = lookup_taps(table.size(0), q, k, who);
    const index_t d = table.size(1);
    Tensor<T> r = Tensor<T>::uninitialized({q, k, d});
    for (std::size_t t = 0; t < taps.size(); ++t) {
      const T* a = table.data() + taps[t].i0 * d;
      const T* b = table.data() + taps[t].i1 * d;
      const T l = static_cast<T>(taps[t].lambda);
      T* out = r.data() + static_cast<index_t>(t) * d;
      for (index_t c = 0; c < d; ++c) out[c] = (1 - l) * a[c] + l * b[c];
    }
    return r;
  }

  template <Scalar T>
  static Tensor<T> rel_pos_lookup_backward(const Tensor<T>& dr, index_t table_length) {
    constexpr const char* who = "rev::ops::rel_pos_lookup_backward";
    expect_rank(dr, 3, who, "dR");
    const auto taps = lookup_taps(table_length, dr.size(0), dr.size(1), who);
    const index_t d = dr.size(2);
    Tensor<T> dt({table_length, d});
    for (std::size_t t = 0; t < taps.size(); ++t) {
      const T* g = dr.data() + static_cast<index_t>(t) * d;
      const T l = static_cast<T>(taps[t].lambda);
      T* a = dt.data() + taps[t].i0 * d;
      T* b = dt.data() + taps[t].i1 * d;
      for (index_t c = 0; c < d; ++c) {
        a[c] += (1 - l) * g[c];
        b[c] += l * g[c];
      }
    }
    return dt;
  }

  template <Scalar T>
  static Tensor<T> rel_pos_bias(const Tensor<T>& q, const Tensor<T>& rh, const Tensor<T>& rw) {
    const auto s = detail::rel_pos_bias_check(q, rh, rw, "rev::ops::rel_pos_bias");
    Tensor<T> bias = Tensor<T>::uninitialized({s.B, s.qh * s.qw, s.kh * s.kw});
    parallel_for(s.B * s.qh * s.qw, grain(s), [&](index_t begin, index_t end) {
      vector<T> h(s.kh), w(s.kw);
      for (index_t t = begin; t < end; ++t) {
        const index_t i = (t / s.qw) % s.qh, j = t % s.qw;
        const const_row<T> qv(q.data() + t * s.d, s.d);
        h.noalias() = table_at(rh, i, s.kh, s.d) * qv;
        w.noalias() = table_at(rw, j, s.kw, s.d) * qv;
        Eigen::Map<matrix<T>> out(bias.data() + t * s.kh * s.kw, s.kh, s.kw);
        out = h.replicate(1, s.kw) + w.transpose().replicate(s.kh, 1);
      }
    });
    return bias;
  }

  template <Scalar T>
  static rel_pos_bias_grads<T> rel_pos_bias_backward(const Tensor<T>& q, const Tensor<T>& rh, const Tensor<T>& rw,
                                                     const Tensor<T>& dbias) {
    constexpr const char* who = "rev::ops::rel_pos_bias_backward";
    const auto s = detail::rel_pos_bias_check(q, rh, rw, who);
    expect_shape(dbias, {s.B, s.qh * s.qw, s.kh * s.kw}, who, "dbias");
    const index_t n = s.B * s.qh * s.qw;
    // Per query, the bias's gradient summed over key columns (sh [kh]) and over key rows (sw [kw]).
    Tensor<T> sh = Tensor<T>::uninitialized({n, s.kh}), sw = Tensor<T>::uninitialized({n, s.kw});
    rel_pos_bias_grads<T> g{Tensor<T>::uninitialized(q.shape()), Tensor<T>::uninitialized(rh.shape()),
                            Tensor<T>::uninitialized(rw.shape())};
    parallel_for(n, grain(s), [&](index_t begin, index_t end) {
      for (index_t t = begin; t < end; ++t) {
        const index_t i = (t / s.qw) % s.qh, j = t % s.qw;
        const Eigen::Map<const matrix<T>> db(dbias.data() + t * s.kh * s.kw, s.kh, s.kw);
        Eigen::Map<vector<T>> h(sh.data() + t * s.kh, s.kh), w(sw.data() + t * s.kw, s.kw);
        h = db.rowwise().sum();
        w = db.colwise().sum().transpose();
        Eigen::Map<row<T>>(g.dq.data() + t * s.d, s.d).noalias() =
            h.transpose() * table_at(rh, i, s.kh, s.d) + w.transpose() * table_at(rw, j, s.kw, s.d);
      }
    });
    // dR_h[i] = sum over the queries of row i of sh ⊗ q; dR_w[j] over those of column j.
    parallel_for(s.qh, 1, [&](index_t begin, index_t end) {
      for (index_t i = begin; i < end; ++i)
        accumulate(
            g.drh, i, s.kh, s, sh, q, [&](index_t b, index_t x) { return (b * s.qh + i) * s.qw + x; }, s.qw);
    });
    parallel_for(s.qw, 1, [&](index_t begin, index_t end) {
      for (index_t j = begin; j < end; ++j)
        accumulate(
            g.drw, j, s.kw, s, sw, q, [&](index_t b, index_t y) { return (b * s.qh + y) * s.qw + j; }, s.qh);
    });
    return g;
  }

 private:
  template <class T>
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  template <class T>
  using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  template <class T>
  using row = Eigen::Matrix<T, 1, Eigen::Dynamic>;
  template <class T>
  using const_row = Eigen::Map<const vector<T>>;

  // One entry of R: (1 - lambda) table[i0] + lambda table[i1].
  struct tap {
    index_t i0, i1;
    double lambda;
  };

  // The taps of R [q, k] for a table of `length` rows, row-major over (i, m).
  static std::vector<tap> lookup_taps(index_t length, index_t q, index_t k, const char* who) {
    check<value_error>(q >= 1 && k >= 1, who, ": grid sides ", q, " (queries) and ", k, " (keys) must be positive");
    check<shape_error>(length >= 1, who, ": the table has ", length, " rows, expected at least one");
    const index_t m = 2 * std::max(q, k) - 1;
    const double qs = std::max(static_cast<double>(k) / static_cast<double>(q), 1.0);
    const double ks = std::max(static_cast<double>(q) / static_cast<double>(k), 1.0);
    std::vector<tap> taps;
    taps.reserve(static_cast<std::size_t>(q * k));
    for (index_t i = 0; i < q; ++i)
      for (index_t j = 0; j < k; ++j) {
        const auto r = static_cast<index_t>(static_cast<double>(i) * qs - static_cast<double>(j) * ks +
                                            static_cast<double>(k - 1) * ks);
        if (length == m) {
          taps.push_back({r, r, 0.0});
          continue;
        }
        // Linear resampling of `length` rows to m, align_corners = False.
        const double src =
            std::max((static_cast<double>(r) + 0.5) * static_cast<double>(length) / static_cast<double>(m) - 0.5, 0.0);
        const index_t i0 = std::min(static_cast<index_t>(src), length - 1);
        taps.push_back({i0, i0 + (i0 < length - 1 ? 1 : 0), std::clamp(src - static_cast<double>(i0), 0.0, 1.0)});
      }
    return taps;
  }

  // R[i] as a [k, d] matrix.
  template <Scalar T>
  static Eigen::Map<const matrix<T>> table_at(const Tensor<T>& r, index_t i, index_t k, index_t d) {
    return Eigen::Map<const matrix<T>>(r.data() + i * k * d, k, d);
  }

  template <Scalar T, class Query>
  static void accumulate(Tensor<T>& dr, index_t i, index_t k, const detail::rel_pos_bias_dims& s, const Tensor<T>& sums,
                         const Tensor<T>& q, Query&& query, index_t along) {
    Eigen::Map<matrix<T>> out(dr.data() + i * k * s.d, k, s.d);
    out.setZero();
    for (index_t b = 0; b < s.B; ++b)
      for (index_t x = 0; x < along; ++x) {
        const index_t t = query(b, x);
        out.noalias() +=
            Eigen::Map<const vector<T>>(sums.data() + t * k, k) * Eigen::Map<const row<T>>(q.data() + t * s.d, s.d);
      }
  }

  static index_t grain(const detail::rel_pos_bias_dims& s) {
    return std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(1, (s.kh + s.kw) * s.d + s.kh * s.kw));
  }
};

}  // namespace rev::ops::host
