// chainrule's compiled BPE core: pre-tokenisation, word counting, merge learning, encoding.
//
// The Python reference in chainrule/tokenizers/_merges.py defines the behaviour; this file is
// the same algorithms made fast, and the tests check that both agree.
//
// Two modes, chosen by the tokenizer kind:
//   mode 0 (classic BPE): words are runs of non-whitespace (Python's str.isspace); a word's
//     symbols are its code points followed by the end-of-word marker; whitespace is emitted
//     one character per token, except a single space between two words, which is implied by
//     the marker.
//   mode 1 (byte-level BPE): GPT-2's pre-tokenisation pattern; a piece's symbols are its bytes.
//
// Merge learning is incremental (Sennrich et al.'s algorithm without recounting): pair -> count,
// pair -> words containing it, and a lazy max-heap keyed by (count, first occurrence). Ties go
// to the pair that occurs first in the corpus (word types in order of first appearance, then
// left to right), the rule documented in _merges.py.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <deque>
#include <queue>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

// ---------------------------------------------------------------- Unicode classes
enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4, kPySpace = 8 };
std::vector<uint8_t> g_class;  // one entry per code point, filled by set_classes()

inline uint8_t cls(uint32_t cp) { return cp < g_class.size() ? g_class[cp] : 0; }

// Decode one code point of valid UTF-8 (Python hands us valid UTF-8) at s[i].
inline uint32_t cp_at(const unsigned char* s, size_t i, int& len) {
  unsigned char c = s[i];
  if (c < 0x80) { len = 1; return c; }
  if (c < 0xE0) { len = 2; return ((c & 0x1F) << 6) | (s[i + 1] & 0x3F); }
  if (c < 0xF0) {
    len = 3;
    return ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
  }
  len = 4;
  return ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
         (s[i + 3] & 0x3F);
}

// Consume a run of code points whose class satisfies pred, from byte i; returns the end.
template <class Pred>
inline size_t run(const unsigned char* s, size_t n, size_t i, Pred pred) {
  while (i < n) {
    int len;
    uint32_t cp = cp_at(s, i, len);
    if (!pred(cls(cp))) break;
    i += len;
  }
  return i;
}

inline bool is_other(uint8_t c) { return !(c & (kLetter | kNumber | kSpace)); }

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Calls emit(start, end, is_word) for each piece (byte offsets); is_word is unused here.
template <class Emit>
void gpt2_pieces(const unsigned char* s, size_t n, Emit emit) {
  size_t i = 0;
  while (i < n) {
    if (s[i] == '\'' && i + 1 < n) {
      unsigned char d = s[i + 1];
      if (d == 's' || d == 't' || d == 'm' || d == 'd') { emit(i, i + 2, true); i += 2; continue; }
      if (i + 2 < n && ((d == 'r' && s[i + 2] == 'e') || (d == 'v' && s[i + 2] == 'e') ||
                        (d == 'l' && s[i + 2] == 'l'))) {
        emit(i, i + 3, true); i += 3; continue;
      }
    }
    size_t k = (s[i] == ' ' && i + 1 < n) ? i + 1 : i;
    int len;
    uint8_t c = cls(cp_at(s, k, len));
    if (c & kLetter) {
      size_t e = run(s, n, k, [](uint8_t x) { return (x & kLetter) != 0; });
      emit(i, e, true); i = e; continue;
    }
    if (c & kNumber) {
      size_t e = run(s, n, k, [](uint8_t x) { return (x & kNumber) != 0; });
      emit(i, e, true); i = e; continue;
    }
    if (is_other(c)) {
      size_t e = run(s, n, k, is_other);
      emit(i, e, true); i = e; continue;
    }
    // whitespace at i: the maximal run, minus its last character when a non-space follows
    size_t e = i, last = i;
    int chars = 0;
    while (e < n) {
      uint32_t cp = cp_at(s, e, len);
      if (!(cls(cp) & kSpace)) break;
      last = e; e += len; ++chars;
    }
    if (e < n && chars >= 2) e = last;
    emit(i, e, false); i = e;
  }
}

// Classic: maximal runs of whitespace (str.isspace) and of non-whitespace.
template <class Emit>
void split_pieces(const unsigned char* s, size_t n, Emit emit) {
  size_t i = 0;
  while (i < n) {
    int len;
    bool space = cls(cp_at(s, i, len)) & kPySpace;
    size_t e = run(s, n, i, [space](uint8_t x) { return ((x & kPySpace) != 0) == space; });
    emit(i, e, !space); i = e;
  }
}

// Byte offsets where a text may be cut without changing its pieces: right after a lone '\n'
// between two non-spaces (no piece of either mode spans such a point, and the newline is a
// piece of its own whether or not it ends the text).
std::vector<size_t> cut_points(const unsigned char* s, size_t n, size_t parts, uint8_t space) {
  std::vector<size_t> cuts{0};
  for (size_t p = 1; p < parts; ++p) {
    size_t i = std::max(cuts.back(), n * p / parts);
    while (i + 1 < n) {
      // the newline must be a whitespace run of its own: an ASCII non-space before it
      if (s[i] == '\n' && i > 0 && s[i - 1] < 0x80 && !(cls(s[i - 1]) & space)) {
        int len;
        if (!(cls(cp_at(s, i + 1, len)) & space)) break;
      }
      ++i;
    }
    if (i + 1 >= n) break;
    cuts.push_back(i + 1);
  }
  cuts.push_back(n);
  return cuts;
}

struct SvHash {
  size_t operator()(std::string_view v) const noexcept {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (unsigned char c : v) { h ^= c; h *= 1099511628211ULL; }
    return h;
  }
};

inline uint64_t pkey(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

std::string utf8_of(const py::str& text, const char** data, Py_ssize_t* size) {
  *data = PyUnicode_AsUTF8AndSize(text.ptr(), size);
  if (!*data) throw py::error_already_set();
  return {};
}

// ---------------------------------------------------------------- word counting + learning
struct Pair {
  int32_t a = 0, b = 0;
  int64_t count = 0;
  int64_t key = INT64_MAX;  // first occurrence: (word index << 24) | position in word
  std::vector<int32_t> words;
};

struct HeapEntry {
  int64_t count, key;
  int32_t idx;
  bool operator<(const HeapEntry& o) const {  // std::priority_queue pops the largest
    if (count != o.count) return count < o.count;
    return key > o.key;
  }
};

class WordCounter {
 public:
  explicit WordCounter(int mode) : mode_(mode) {}

  void add(const py::str& text) {
    const char* data; Py_ssize_t size;
    utf8_of(text, &data, &size);
    py::gil_scoped_release release;
    auto s = reinterpret_cast<const unsigned char*>(data);
    auto emit = [&](size_t a, size_t b, bool word) {
      if (mode_ == 0 && !word) {
        for (size_t i = a; i < b;) { int len; space_.push_back(cp_at(s, i, len)); i += len; }
        return;
      }
      std::string_view piece(data + a, b - a);
      auto it = index_.find(piece);
      if (it != index_.end()) { counts_[it->second] += 1; return; }
      arena_.emplace_back(piece);
      index_.emplace(std::string_view(arena_.back()), int32_t(keys_.size()));
      keys_.emplace_back(arena_.back());
      counts_.push_back(1);
    };
    if (mode_ == 1) gpt2_pieces(s, size_t(size), emit); else split_pieces(s, size_t(size), emit);
    std::sort(space_.begin(), space_.end());
    space_.erase(std::unique(space_.begin(), space_.end()), space_.end());
  }

  size_t size() const { return keys_.size(); }

  std::vector<std::pair<py::bytes, int64_t>> items() const {
    std::vector<std::pair<py::bytes, int64_t>> out;
    out.reserve(keys_.size());
    for (size_t i = 0; i < keys_.size(); ++i) out.emplace_back(py::bytes(keys_[i].data(), keys_[i].size()), counts_[i]);
    return out;
  }

  // unit (code point in mode 0, byte in mode 1) -> occurrences, weighted by word counts
  std::unordered_map<uint32_t, int64_t> units() const {
    std::unordered_map<uint32_t, int64_t> out;
    for (size_t w = 0; w < keys_.size(); ++w) {
      auto s = reinterpret_cast<const unsigned char*>(keys_[w].data());
      for (size_t i = 0; i < keys_[w].size();) {
        int len = 1;
        uint32_t u = mode_ == 0 ? cp_at(s, i, len) : s[i];
        out[u] += counts_[w];
        i += len;
      }
    }
    return out;
  }

  std::vector<uint32_t> spaces() const { return space_; }

  std::vector<std::tuple<int32_t, int32_t, int32_t>> learn(
      const std::unordered_map<uint32_t, int32_t>& base, int32_t eow,
      const std::unordered_map<int32_t, py::bytes>& spellings_in, int64_t num_new,
      int64_t min_count) {
    std::unordered_map<std::string, int32_t> by_spelling;
    std::vector<std::string> spelling;
    int32_t next_id = 0;
    for (auto& [id, sp] : spellings_in) next_id = std::max(next_id, id + 1);
    spelling.resize(size_t(next_id));
    for (auto& [id, sp] : spellings_in) {
      spelling[size_t(id)] = std::string(sp);
      by_spelling.emplace(spelling[size_t(id)], id);
    }
    py::gil_scoped_release release;
    // flat linked lists over every word type's symbols
    const size_t W = keys_.size();
    std::vector<int32_t> sym, nxt, prv;
    std::vector<int64_t> start(W + 1, 0);
    for (size_t w = 0; w < W; ++w) {
      start[w] = int64_t(sym.size());
      auto s = reinterpret_cast<const unsigned char*>(keys_[w].data());
      for (size_t i = 0; i < keys_[w].size();) {
        int len = 1;
        uint32_t u = mode_ == 0 ? cp_at(s, i, len) : s[i];
        auto it = base.find(u);
        if (it == base.end()) throw std::runtime_error("symbol missing from the base alphabet");
        sym.push_back(it->second);
        i += len;
      }
      if (eow >= 0) sym.push_back(eow);
      int64_t a = start[w], b = int64_t(sym.size());
      for (int64_t i = a; i < b; ++i) {
        nxt.push_back(i + 1 < b ? int32_t(i + 1) : -1);
        prv.push_back(i > a ? int32_t(i - 1) : -1);
      }
    }
    start[W] = int64_t(sym.size());
    if (sym.size() >= size_t(INT32_MAX)) throw std::runtime_error("corpus too large for one call");

    std::unordered_map<uint64_t, int32_t> pair_index;
    pair_index.reserve(1 << 16);
    std::vector<Pair> pairs;
    auto get = [&](int32_t a, int32_t b) -> int32_t {
      auto [it, fresh] = pair_index.try_emplace(pkey(a, b), int32_t(pairs.size()));
      if (fresh) { pairs.emplace_back(); pairs.back().a = a; pairs.back().b = b; }
      return it->second;
    };
    auto keyof = [&](size_t w, int64_t i) -> int64_t {
      return (int64_t(w) << 24) | std::min<int64_t>(i - start[w], (1 << 24) - 1);
    };
    for (size_t w = 0; w < W; ++w) {
      for (int64_t i = start[w]; i + 1 < start[w + 1]; ++i) {
        Pair& p = pairs[size_t(get(sym[i], sym[i + 1]))];
        p.count += counts_[w];
        p.key = std::min(p.key, keyof(w, i));
        if (p.words.empty() || p.words.back() != int32_t(w)) p.words.push_back(int32_t(w));
      }
    }
    std::priority_queue<HeapEntry> heap;
    for (size_t k = 0; k < pairs.size(); ++k) heap.push({pairs[k].count, pairs[k].key, int32_t(k)});

    std::vector<int32_t> seen(W, -1), valid, changed;
    std::vector<int32_t> changed_stamp;
    int32_t stamp = 0;
    std::vector<std::tuple<int32_t, int32_t, int32_t>> merges;
    int64_t added = 0;
    // count bookkeeping for the pairs around a merge; increments remember the word and place
    auto dec = [&](int32_t a, int32_t b, int64_t c) { pairs[size_t(get(a, b))].count -= c; };
    auto inc = [&](int32_t a, int32_t b, int64_t c, int32_t w, int64_t key) {
      int32_t k = get(a, b);
      Pair& p = pairs[size_t(k)];
      p.count += c;
      p.key = std::min(p.key, key);
      if (p.words.empty() || p.words.back() != w) p.words.push_back(w);
      if (size_t(k) >= changed_stamp.size()) changed_stamp.resize(pairs.size() * 2, -1);
      if (changed_stamp[size_t(k)] != stamp) { changed_stamp[size_t(k)] = stamp; changed.push_back(k); }
    };
    while (added < num_new && !heap.empty()) {
      HeapEntry top = heap.top();
      heap.pop();
      const int32_t idx = top.idx;
      if (pairs[size_t(idx)].count <= 0) continue;
      if (pairs[size_t(idx)].count != top.count) {
        heap.push({pairs[size_t(idx)].count, pairs[size_t(idx)].key, idx});
        continue;
      }
      if (top.count < min_count) break;
      const int32_t a = pairs[size_t(idx)].a, b = pairs[size_t(idx)].b;
      // which words still hold the pair, and where it occurs first (exactly)
      ++stamp;
      valid.clear();
      int64_t exact = INT64_MAX;
      for (int32_t w : pairs[size_t(idx)].words) {
        if (seen[size_t(w)] == stamp) continue;
        seen[size_t(w)] = stamp;
        for (int64_t i = start[size_t(w)]; i >= 0; i = nxt[size_t(i)]) {
          int32_t j = nxt[size_t(i)];
          if (j >= 0 && sym[size_t(i)] == a && sym[size_t(j)] == b) {
            exact = std::min(exact, keyof(size_t(w), i));
            valid.push_back(w);
            break;
          }
        }
      }
      pairs[size_t(idx)].words.assign(valid.begin(), valid.end());
      if (exact != top.key) {
        pairs[size_t(idx)].key = exact;
        heap.push({top.count, exact, idx});
        continue;
      }
      std::string sp = spelling[size_t(a)] + spelling[size_t(b)];
      int32_t nw;
      auto found = by_spelling.find(sp);
      if (found != by_spelling.end()) {
        nw = found->second;
      } else {
        nw = next_id++;
        spelling.push_back(sp);
        by_spelling.emplace(std::move(sp), nw);
        ++added;
      }
      merges.emplace_back(a, b, nw);
      changed.clear();
      for (int32_t w : valid) {
        const int64_t c = counts_[size_t(w)];
        int64_t i = start[size_t(w)];
        while (i != -1) {
          int32_t j = nxt[size_t(i)];
          if (j < 0) break;
          if (sym[size_t(i)] == a && sym[size_t(j)] == b) {
            int32_t p = prv[size_t(i)], n = nxt[size_t(j)];
            if (p >= 0) dec(sym[size_t(p)], a, c);
            if (n >= 0) dec(b, sym[size_t(n)], c);
            sym[size_t(i)] = nw;
            nxt[size_t(i)] = n;
            if (n >= 0) prv[size_t(n)] = int32_t(i);
            sym[size_t(j)] = -1;
            if (p >= 0) inc(sym[size_t(p)], nw, c, w, keyof(size_t(w), p));
            if (n >= 0) inc(nw, sym[size_t(n)], c, w, keyof(size_t(w), i));
            i = n;
          } else {
            i = j;
          }
        }
      }
      Pair& done = pairs[size_t(idx)];
      done.count = 0;
      std::vector<int32_t>().swap(done.words);
      for (int32_t k : changed)
        if (pairs[size_t(k)].count > 0) heap.push({pairs[size_t(k)].count, pairs[size_t(k)].key, k});
    }
    return merges;
  }

 private:
  int mode_;
  std::deque<std::string> arena_;
  std::unordered_map<std::string_view, int32_t, SvHash> index_;
  std::vector<std::string_view> keys_;
  std::vector<int64_t> counts_;
  std::vector<uint32_t> space_;
};


// ---------------------------------------------------------------- encoding
struct Cache {
  std::deque<std::string> arena;
  std::unordered_map<std::string_view, std::vector<int32_t>, SvHash> map;
};
constexpr size_t kCacheMax = 1 << 20;

class Encoder {
 public:
  Encoder(int mode, const std::unordered_map<uint32_t, int32_t>& base,
          const std::vector<std::tuple<int32_t, int32_t, int32_t>>& merges, int32_t eow,
          int32_t unk)
      : mode_(mode), eow_(eow), unk_(unk) {
    std::fill(std::begin(ascii_), std::end(ascii_), unk);
    for (auto& [u, id] : base) {
      if (u < 128 || (mode == 1 && u < 256)) ascii_[u] = id; else base_.emplace(u, id);
    }
    ranks_.reserve(merges.size() * 2);
    int32_t r = 0;
    for (auto& [a, b, n] : merges) ranks_.try_emplace(pkey(a, b), std::make_pair(r++, n));
  }

  py::array_t<int32_t> encode(const py::str& text) {
    const char* data; Py_ssize_t size;
    utf8_of(text, &data, &size);
    std::vector<int32_t> out;
    {
      py::gil_scoped_release release;
      out.reserve(size_t(size) / 3 + 8);
      encode_into(reinterpret_cast<const unsigned char*>(data), size_t(size), cache_, out);
    }
    return to_array(out);
  }

  // Split the text at safe points and encode the parts on `threads` threads.
  py::array_t<int32_t> encode_parallel(const py::str& text, int threads) {
    const char* data; Py_ssize_t size;
    utf8_of(text, &data, &size);
    auto s = reinterpret_cast<const unsigned char*>(data);
    std::vector<std::vector<int32_t>> parts;
    {
      py::gil_scoped_release release;
      threads = std::max(1, threads);
      auto cuts = cut_points(s, size_t(size), size_t(threads) * 4, mode_ == 1 ? kSpace : kPySpace);
      parts.resize(cuts.size() - 1);
      std::vector<std::thread> pool;
      std::atomic_size_t next{0};
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
          Cache local;
          for (size_t k; (k = next++) < parts.size();)
            encode_into(s + cuts[k], cuts[k + 1] - cuts[k], local, parts[k]);
        });
      }
      for (auto& th : pool) th.join();
    }
    size_t total = 0;
    for (auto& p : parts) total += p.size();
    py::array_t<int32_t> arr(static_cast<py::ssize_t>(total));
    int32_t* dst = arr.mutable_data();
    for (auto& p : parts) { std::copy(p.begin(), p.end(), dst); dst += p.size(); }
    return arr;
  }

  // Pieces of the text as (start, end) byte offsets (for tests and inspection).
  std::vector<std::pair<size_t, size_t>> pieces(const py::str& text) {
    const char* data; Py_ssize_t size;
    utf8_of(text, &data, &size);
    std::vector<std::pair<size_t, size_t>> out;
    auto emit = [&](size_t a, size_t b, bool) { out.emplace_back(a, b); };
    auto s = reinterpret_cast<const unsigned char*>(data);
    if (mode_ == 1) gpt2_pieces(s, size_t(size), emit); else split_pieces(s, size_t(size), emit);
    return out;
  }

 private:
  static py::array_t<int32_t> to_array(const std::vector<int32_t>& v) {
    py::array_t<int32_t> arr(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), arr.mutable_data());
    return arr;
  }

  int32_t unit_id(uint32_t u) const {
    if (u < 128 || (mode_ == 1 && u < 256)) return ascii_[u];
    auto it = base_.find(u);
    return it == base_.end() ? unk_ : it->second;
  }

  void bpe(std::vector<int32_t>& w) const {
    while (w.size() > 1) {
      int32_t best = INT32_MAX, merged = -1;
      size_t at = 0;
      for (size_t i = 0; i + 1 < w.size(); ++i) {
        auto it = ranks_.find(pkey(w[i], w[i + 1]));
        if (it != ranks_.end() && it->second.first < best) {
          best = it->second.first; merged = it->second.second; at = i;
        }
      }
      if (merged < 0) return;
      int32_t a = w[at], b = w[at + 1];
      size_t o = at;
      for (size_t i = at; i < w.size();) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) { w[o++] = merged; i += 2; }
        else w[o++] = w[i++];
      }
      w.resize(o);
    }
  }

  void encode_word(const unsigned char* s, size_t a, size_t b, Cache& cache,
                   std::vector<int32_t>& out) const {
    std::string_view key(reinterpret_cast<const char*>(s) + a, b - a);
    auto it = cache.map.find(key);
    if (it != cache.map.end()) { out.insert(out.end(), it->second.begin(), it->second.end()); return; }
    std::vector<int32_t> w;
    w.reserve(b - a + 1);
    for (size_t i = a; i < b;) {
      int len = 1;
      uint32_t u = mode_ == 1 ? s[i] : cp_at(s, i, len);
      w.push_back(unit_id(u));
      i += len;
    }
    if (eow_ >= 0) w.push_back(eow_);
    bpe(w);
    out.insert(out.end(), w.begin(), w.end());
    if (cache.map.size() < kCacheMax) {
      cache.arena.emplace_back(key);
      cache.map.emplace(std::string_view(cache.arena.back()), std::move(w));
    }
  }

  void encode_into(const unsigned char* s, size_t n, Cache& cache, std::vector<int32_t>& out) const {
    if (mode_ == 1) {
      gpt2_pieces(s, n, [&](size_t a, size_t b, bool) { encode_word(s, a, b, cache, out); });
      return;
    }
    bool prev_word = false;
    split_pieces(s, n, [&](size_t a, size_t b, bool word) {
      if (word) { encode_word(s, a, b, cache, out); prev_word = true; return; }
      // one space between two words is implied by the end-of-word marker
      if (!(prev_word && b - a == 1 && s[a] == ' ' && b < n)) {
        for (size_t i = a; i < b;) { int len; out.push_back(unit_id(cp_at(s, i, len))); i += len; }
      }
      prev_word = false;
    });
  }

  int mode_;
  int32_t eow_, unk_;
  int32_t ascii_[256] = {};
  std::unordered_map<uint32_t, int32_t> base_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> ranks_;
  Cache cache_;
};

void set_classes(const std::vector<std::pair<uint32_t, uint32_t>>& letter,
                 const std::vector<std::pair<uint32_t, uint32_t>>& number,
                 const std::vector<std::pair<uint32_t, uint32_t>>& space,
                 const std::vector<uint32_t>& pyspace) {
  std::vector<uint8_t> t(0x110000, 0);
  auto fill = [&](const std::vector<std::pair<uint32_t, uint32_t>>& rs, uint8_t bit) {
    for (auto [a, b] : rs)
      for (uint32_t c = a; c <= b && c < t.size(); ++c) t[c] |= bit;
  };
  fill(letter, kLetter);
  fill(number, kNumber);
  fill(space, kSpace);
  for (uint32_t c : pyspace) if (c < t.size()) t[c] |= kPySpace;
  g_class.swap(t);
}

}  // namespace

PYBIND11_MODULE(_bpe_core, m) {
  m.doc() = "chainrule's compiled BPE core (pre-tokenisation, merge learning, encoding).";
  m.def("set_classes", &set_classes, "Install the Unicode class table (from the regex module).");
  m.def("classes_ready", [] { return !g_class.empty(); });
  py::class_<WordCounter>(m, "WordCounter")
      .def(py::init<int>())
      .def("add", &WordCounter::add)
      .def("__len__", &WordCounter::size)
      .def("items", &WordCounter::items)
      .def("units", &WordCounter::units)
      .def("spaces", &WordCounter::spaces)
      .def("learn", &WordCounter::learn);
  py::class_<Encoder>(m, "Encoder")
      .def(py::init<int, const std::unordered_map<uint32_t, int32_t>&,
                    const std::vector<std::tuple<int32_t, int32_t, int32_t>>&, int32_t, int32_t>())
      .def("encode", &Encoder::encode)
      .def("encode_parallel", &Encoder::encode_parallel)
      .def("pieces", &Encoder::pieces);
}
