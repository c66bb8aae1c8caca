// chainrule's compiled n-gram query: backoff scoring of token-id rows, one hash table per order,
// the backoffs of the previous position's contexts carried from one token to the next.
//
// Table k (k >= 2) is an open-addressing hash table of 16-byte slots {tag, prob, backoff}.
// An n-gram's hash key is the suffix encoding of tables.py with *slot positions* in place of
// sorted rows: key(w1..wk) = slot_{k-1}(w2..wk) * V + w1 (slot_1(w) = w), so each order's key
// follows from the previous order's hit without reading the sorted arrays. The tag holds
// key + 1 (0 = empty) shifted left by one, its low bit saying whether some (k+1)-gram extends the
// entry to the left -- when none does, the next lookup is skipped (it would miss).
// The arithmetic is the numpy reference's (chainrule/models/ngram/query.py) in the same order,
// so both give bit-identical float64 results. The slots can be exported and handed back (the
// binary model file stores them), so loading needs no rebuild.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "words.hpp"

namespace py = pybind11;

namespace {

// Row layouts score_rows reads: where row b starts in the ids, how long it is, and where its
// len - 1 scores go.
struct Padded {  // a (B, T) array, optional lengths
  const int64_t* lens;
  int64_t B, T;
  int64_t rows() const { return B; }
  int64_t start(int64_t b) const { return b * T; }
  int64_t len(int64_t b) const { return lens ? std::min(std::max<int64_t>(lens[b], 0), T) : T; }
  int64_t out(int64_t b) const { return b * (T - 1); }
};

struct Flat {  // rows back to back: row b is ids[off[b]:off[b + 1]] (every row >= 1 id)
  const int64_t* off;
  int64_t R;
  int64_t rows() const { return R; }
  int64_t start(int64_t b) const { return off[b]; }
  int64_t len(int64_t b) const { return off[b + 1] - off[b]; }
  int64_t out(int64_t b) const { return off[b] - b; }
};

struct Slot {
  uint64_t tag;  // ((key + 1) << 1) | extends; 0 = empty
  float prob;
  float backoff;
};
static_assert(sizeof(Slot) == 16, "slots are 16 bytes");

using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using U8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using U64 = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;

constexpr uint64_t kMaxKey = uint64_t{1} << 61;

inline uint64_t home(uint64_t key, uint64_t size) {
  uint64_t h = key * 0x9E3779B97F4A7C15ULL;
  h ^= h >> 29;
  return static_cast<uint64_t>((static_cast<__uint128_t>(h) * size) >> 64);
}

struct Table {
  const Slot* slots = nullptr;
  uint64_t size = 0;

  // the slot position holding ``key`` (probing from its home slot ``s``), or -1; probing is
  // bounded, so a damaged table cannot loop forever
  inline int64_t find_from(uint64_t key, uint64_t s) const {
    const uint64_t want = key + 1;
    for (uint64_t probes = 0; probes < size; ++probes) {
      const uint64_t tag = slots[s].tag;
      if ((tag >> 1) == want) return static_cast<int64_t>(s);
      if (tag == 0) return -1;
      if (++s == size) s = 0;
    }
    return -1;
  }
};

class Index {
 public:
  static constexpr int kMaxOrder = 64;
  static constexpr int kGroup = 64;

  // Build from the sorted tables: keys[k-1] (n_k,) int64 in row suffix encoding, prob, backoff.
  static Index build(int64_t V, int64_t bos, py::list keys, py::list prob, py::list backoff) {
    const int n = static_cast<int>(keys.size());
    if (n < 1 || prob.size() != keys.size() || backoff.size() != keys.size())
      throw std::invalid_argument("keys, prob and backoff need one array per order");
    Index ix(V, bos, n);
    std::vector<I64> K;
    std::vector<F32> P, B;
    for (int k = 1; k <= n; ++k) {
      K.push_back(keys[k - 1].cast<I64>());
      P.push_back(prob[k - 1].cast<F32>());
      B.push_back(backoff[k - 1].cast<F32>());
      const int64_t m = K.back().shape(0);
      if (K.back().ndim() != 1 || P.back().ndim() != 1 || B.back().ndim() != 1 ||
          P.back().shape(0) != m || B.back().shape(0) != m)
        throw std::invalid_argument("the arrays of order " + std::to_string(k) +
                                    " differ in length");
    }
    if (K[0].shape(0) != V) throw std::invalid_argument("the unigram table must hold every id");
    ix.set_unigrams(P[0], B[0], U8(py::array::ShapeContainer{V}));
    uint8_t* ext1 = ix.uni_ext_.mutable_data();
    std::fill(ext1, ext1 + V, 0);
    // rows of table k-1 -> their slot positions (for table 2: the word itself)
    std::vector<uint64_t> pos_prev(V);
    for (int64_t w = 0; w < V; ++w) pos_prev[w] = static_cast<uint64_t>(w);
    if (n >= 2) mark_parents(K[1], V, static_cast<int64_t>(pos_prev.size()), ext1);
    for (int k = 2; k <= n; ++k) {
      const int64_t m = K[k - 1].shape(0);
      const int64_t* key = K[k - 1].data();
      std::vector<uint8_t> ext(m, 0);
      if (k < n) mark_parents(K[k], V, m, ext.data());
      const uint64_t size = static_cast<uint64_t>(m + m / 2 + 1);
      if (static_cast<__uint128_t>(pos_prev.size()) * static_cast<uint64_t>(V) >= kMaxKey)
        throw std::invalid_argument("the tables are too large for 64-bit hash keys");
      U64 arr({static_cast<py::ssize_t>(size), py::ssize_t{2}});
      Slot* slots = reinterpret_cast<Slot*>(arr.mutable_data());
      std::fill(slots, slots + size, Slot{0, 0.0f, 0.0f});
      std::vector<uint64_t> pos(m);
      const float* p = P[k - 1].data();
      const float* b = B[k - 1].data();
      for (int64_t i = 0; i < m; ++i) {
        const int64_t parent = key[i] / V, w1 = key[i] % V;
        if (key[i] < 0 || parent >= static_cast<int64_t>(pos_prev.size()))
          throw std::invalid_argument("an n-gram key points outside the table below it");
        const uint64_t hk = pos_prev[parent] * static_cast<uint64_t>(V) + static_cast<uint64_t>(w1);
        uint64_t s = home(hk, size);
        while (slots[s].tag != 0) {
          if ((slots[s].tag >> 1) == hk + 1) throw std::invalid_argument("duplicate n-gram key");
          if (++s == size) s = 0;
        }
        slots[s] = Slot{((hk + 1) << 1) | ext[i], p[i], b[i]};
        pos[i] = s;
      }
      ix.add_table(arr);
      pos_prev.swap(pos);
    }
    return ix;
  }

  // Wrap exported arrays (from a binary model file); shapes are checked, contents trusted only
  // as far as memory safety goes.
  static Index from_arrays(int64_t V, int64_t bos, F32 uni_prob, F32 uni_backoff, U8 uni_ext,
                           py::list slots) {
    Index ix(V, bos, static_cast<int>(slots.size()) + 1);
    if (uni_prob.ndim() != 1 || uni_prob.shape(0) != V || uni_backoff.ndim() != 1 ||
        uni_backoff.shape(0) != V || uni_ext.ndim() != 1 || uni_ext.shape(0) != V)
      throw std::invalid_argument("the unigram arrays must hold one value per id");
    ix.set_unigrams(uni_prob, uni_backoff, uni_ext);
    uint64_t below = static_cast<uint64_t>(V);
    for (py::handle h : slots) {
      U64 arr = h.cast<U64>();
      if (arr.ndim() != 2 || arr.shape(1) != 2 || arr.shape(0) < 1)
        throw std::invalid_argument("a hash table must have shape (size, 2)");
      if (static_cast<__uint128_t>(below) * static_cast<uint64_t>(V) >= kMaxKey)
        throw std::invalid_argument("the tables are too large for 64-bit hash keys");
      ix.add_table(arr);
      below = static_cast<uint64_t>(arr.shape(0));
    }
    return ix;
  }

  // log10 P(x[b, t] | x[b, :t]) for t >= 1, as (B, T - 1) float64; every row starts afresh.
  // ``lengths`` (B,), optional: positions at or beyond a row's length are padding, not looked
  // up, and get 0.0.
  py::array_t<double> score(I64 tokens, std::optional<I64> lengths) const {
    if (tokens.ndim() != 2) throw std::invalid_argument("tokens must have shape (B, T)");
    const int64_t B = tokens.shape(0), T = tokens.shape(1);
    const int64_t* x = tokens.data();
    for (int64_t i = 0; i < B * T; ++i)
      if (x[i] < 0 || x[i] >= V_) throw std::invalid_argument("token id outside the vocabulary");
    const int64_t* lens = nullptr;
    if (lengths) {
      if (lengths->ndim() != 1 || lengths->shape(0) != B)
        throw std::invalid_argument("lengths must have shape (B,)");
      lens = lengths->data();
    }
    const int64_t W = T > 0 ? T - 1 : 0;
    py::array_t<double> out({B, W});
    double* o = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      std::fill(o, o + B * W, 0.0);
      if (T > 0) score_rows(x, Padded{lens, B, T}, o);
    }
    return out;
  }

  // The same scores for rows stored back to back (one flat id array and offsets (R + 1,), every
  // row at least one id): (N - R,) float64, row r's len - 1 scores at offsets[r] - r.
  py::array_t<double> score_flat(I64 tokens, I64 offsets) const {
    if (tokens.ndim() != 1 || offsets.ndim() != 1 || offsets.shape(0) < 1)
      throw std::invalid_argument("tokens must have shape (N,) and offsets (R + 1,)");
    const int64_t N = tokens.shape(0), R = offsets.shape(0) - 1;
    const int64_t* x = tokens.data();
    const int64_t* off = offsets.data();
    if (off[0] != 0 || off[R] != N)
      throw std::invalid_argument("offsets must start at 0 and end at the number of ids");
    for (int64_t r = 0; r < R; ++r)
      if (off[r + 1] <= off[r]) throw std::invalid_argument("every row needs at least one id");
    for (int64_t i = 0; i < N; ++i)
      if (x[i] < 0 || x[i] >= V_) throw std::invalid_argument("token id outside the vocabulary");
    py::array_t<double> out(N - R);
    double* o = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      score_rows(x, Flat{off, R}, o);
    }
    return out;
  }

  py::tuple arrays() const {
    py::list slots;
    for (size_t k = 2; k < keep_.size(); ++k) slots.append(keep_[k]);
    return py::make_tuple(uni_ext_, slots);
  }

  int order() const { return order_; }

  size_t nbytes() const {
    size_t n = 0;
    for (const Table& t : tables_) n += t.size * sizeof(Slot);
    return n;
  }

 private:
  Index(int64_t V, int64_t bos, int order) : V_(V), bos_(bos), order_(order) {
    if (V < 2) throw std::invalid_argument("the vocabulary needs at least two ids");
    if (order < 1 || order > kMaxOrder)
      throw std::invalid_argument("the order must lie in [1, " + std::to_string(kMaxOrder) + "]");
    tables_.resize(order + 1);
    keep_.resize(2);
  }

  static void mark_parents(const I64& upper, int64_t V, int64_t m, uint8_t* ext) {
    const int64_t* key = upper.data();
    for (int64_t i = 0; i < upper.shape(0); ++i) {
      const int64_t parent = key[i] / V;
      if (key[i] < 0 || parent >= m)
        throw std::invalid_argument("an n-gram key points outside the table below it");
      ext[parent] = 1;
    }
  }

  void set_unigrams(F32 p, F32 b, U8 ext) {
    keep_[0] = p;
    keep_[1] = b;
    uni_ext_ = ext;
    uni_prob_ = p.data();
    uni_bo_ = b.data();
  }

  void add_table(U64 arr) {
    const int k = static_cast<int>(keep_.size());  // keep_ holds 2 + (tables so far)
    tables_[k].slots = reinterpret_cast<const Slot*>(arr.data());
    tables_[k].size = static_cast<uint64_t>(arr.shape(0));
    keep_.push_back(arr);
  }

  // Positions are scored in groups of kGroup (flattened over rows): each order is looked up
  // for the whole group at once, every home slot prefetched before any is read, so the cache
  // misses of different positions overlap instead of queueing one behind another.
  template <class Layout>
  void score_rows(const int64_t* x, const Layout& rows, double* out) const {
    constexpr int G = kGroup;
    const int n = order_, S = n + 1;
    const int64_t B = rows.rows();
    const uint8_t* uext = uni_ext_.data();
    const uint64_t V = static_cast<uint64_t>(V_);
    uint64_t pos[G], key[G], slot[G];
    int64_t flat[G], tt[G], dst[G];
    float p[G];
    int matched[G];
    bool active[G];
    // bo[(q + 1) * S + j]: backoff of position q's context of length j (0 where not stored);
    // row 0 is the position just before the group (carried over)
    std::vector<float> bo(static_cast<size_t>(G + 1) * S, 0.0f);
    int64_t cb = 0, ct = 0;  // the next position to score: row cb, column ct
    int64_t len = B > 0 ? rows.len(0) : 0, first = B > 0 ? rows.start(0) : 0;
    int64_t first_out = B > 0 ? rows.out(0) : 0;
    for (;;) {
      int g = 0;
      while (g < G && cb < B) {  // the next G positions inside the rows' lengths
        if (ct >= len) {
          if (++cb < B) {
            len = rows.len(cb);
            first = rows.start(cb);
            first_out = rows.out(cb);
          }
          ct = 0;
          continue;
        }
        flat[g] = first + ct;
        tt[g] = ct++;
        dst[g++] = first_out;
      }
      if (g == 0) break;
      for (int q = 0; q < g; ++q) {
        const int64_t w = x[flat[q]];
        float* b = &bo[static_cast<size_t>(q + 1) * S];
        std::fill(b, b + S, 0.0f);
        b[1] = uni_bo_[w];
        p[q] = uni_prob_[w];
        matched[q] = 1;
        pos[q] = static_cast<uint64_t>(w);
        active[q] = uext[w] != 0;
      }
      for (int k = 2; k <= n; ++k) {
        const Table& tab = tables_[k];
        bool any = false;
        for (int q = 0; q < g; ++q) {
          if (!active[q]) continue;
          if (tt[q] + 1 < k) {  // the row has fewer than k tokens up to here
            active[q] = false;
            continue;
          }
          key[q] = pos[q] * V + static_cast<uint64_t>(x[flat[q] - k + 1]);
          slot[q] = home(key[q], tab.size);
          __builtin_prefetch(&tab.slots[slot[q]]);
          any = true;
        }
        if (!any) break;
        for (int q = 0; q < g; ++q) {
          if (!active[q]) continue;
          const int64_t s = tab.find_from(key[q], slot[q]);
          if (s < 0) {
            active[q] = false;
            continue;
          }
          const Slot& e = tab.slots[s];
          pos[q] = static_cast<uint64_t>(s);
          p[q] = e.prob;
          bo[static_cast<size_t>(q + 1) * S + k] = e.backoff;
          active[q] = (e.tag & 1) != 0;
          matched[q] = k;
        }
      }
      for (int q = 0; q < g; ++q) {
        if (tt[q] == 0) continue;  // a row's first token is context only
        const int64_t i = flat[q];
        const float* prev = &bo[static_cast<size_t>(q) * S];
        double v = static_cast<double>(p[q]);
        // numpy adds a term for every context length: 0.0 where the context is absent or not
        // longer than the match
        for (int j = 1; j < n; ++j) v += (j >= matched[q]) ? static_cast<double>(prev[j]) : 0.0;
        out[dst[q] + tt[q] - 1] =
            (x[i] == bos_) ? -std::numeric_limits<double>::infinity() : v;
      }
      std::copy(&bo[static_cast<size_t>(g) * S], &bo[static_cast<size_t>(g) * S] + S, bo.begin());
    }
  }

  int64_t V_, bos_;
  int order_;
  std::vector<Table> tables_;  // tables_[k] for k >= 2
  const float* uni_prob_ = nullptr;
  const float* uni_bo_ = nullptr;
  U8 uni_ext_;
  std::vector<py::object> keep_;  // [uni prob, uni backoff, slots of order 2, 3, ...]
};

}  // namespace

PYBIND11_MODULE(_ngram_query_core, m) {
  m.doc() = "chainrule's compiled n-gram query (hashed tables, state carried across tokens).";
  m.attr("MAX_ORDER") = Index::kMaxOrder;
  // bump when the slot layout or the hash function changes: stored indexes of another layout
  // are then rebuilt instead of being read wrongly
  m.attr("INDEX_LAYOUT") = "chainrule-ngram-hash-1";
  py::class_<Index>(m, "Index")
      .def_static("build", &Index::build, py::arg("vocab_size"), py::arg("bos_id"),
                  py::arg("keys"), py::arg("prob"), py::arg("backoff"))
      .def_static("from_arrays", &Index::from_arrays, py::arg("vocab_size"), py::arg("bos_id"),
                  py::arg("uni_prob"), py::arg("uni_backoff"), py::arg("uni_extends"),
                  py::arg("slots"))
      .def("score", &Index::score, py::arg("tokens"), py::arg("lengths") = py::none())
      .def("score_flat", &Index::score_flat, py::arg("tokens"), py::arg("offsets"))
      .def("arrays", &Index::arrays,
           "(unigram extends flags (V,) uint8, [slots of order 2, 3, ... as (size, 2) uint64])")
      .def_property_readonly("order", &Index::order)
      .def_property_readonly("nbytes", &Index::nbytes);
  words::bind(m);
}
