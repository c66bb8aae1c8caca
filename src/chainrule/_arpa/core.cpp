// chainrule's compiled ARPA reader: the n-gram sections of an ARPA file in KenLM's layout
// (``prob<TAB>w1 w2 .. wk[<TAB>backoff]``, one entry per line) parsed straight from the bytes
// into numpy arrays, words as the file-order index of their unigram line.
//
// It accepts exactly the files whose every section the Python reader
// (chainrule/models/ngram/arpa.py) would read on its tab-split fast path, in the canonical
// layout: the file starts with ``\data\``, count lines ``ngram k=n``, sections separated by empty
// lines, ``\end\``; numbers that std::from_chars reads whole (correctly rounded, like Python's
// float(), then rounded to float32 like numpy); words split on single spaces. Anything else --
// a malformed line, extra whitespace, a word that has no unigram line, a unigram that is not
// UTF-8 -- makes ``parse`` return None and the Python reader does the whole job, so it alone
// words the errors and results never depend on which reader ran.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace py = pybind11;

namespace {

// Open addressing over the unigram words; the first spelling wins. A slot holds a word's first
// eight bytes, its length, 32 bits of its hash and its index, so most lookups (words of up to
// eight bytes) never leave the table; longer ones compare the rest in the buffer.
class WordTable {
 public:
  explicit WordTable(size_t n) {
    size_t cap = 16;
    while (cap < n + n / 3 + 1) cap <<= 1;  // at most 3/4 full
    slots_.assign(cap, Slot{0, 0, -1});
    mask_ = cap - 1;
  }
  void insert(std::string_view w, int64_t id, const std::vector<std::string_view>& words) {
    const Slot key = make(w, id);
    for (size_t s = key.hash & mask_;; s = (s + 1) & mask_) {
      if (slots_[s].id < 0) {
        slots_[s] = key;
        return;
      }
      if (same(slots_[s], key, w, words)) return;
    }
  }
  struct Slot {
    uint64_t head;  // the first eight bytes, zero-padded
    uint32_t hash;  // low bits: the home slot
    int32_t id;     // -1: empty
  };
  // the id of ``w`` (its key from make) or -1
  int64_t find(std::string_view w, const Slot& key,
               const std::vector<std::string_view>& words) const {
    for (size_t s = key.hash & mask_;; s = (s + 1) & mask_) {
      const Slot& slot = slots_[s];
      if (slot.id < 0) return -1;
      if (same(slot, key, w, words)) return slot.id;
    }
  }
  void prefetch(const Slot& key) const { __builtin_prefetch(&slots_[key.hash & mask_]); }

  static Slot make(std::string_view w, int64_t id) {
    uint64_t head = 0;
    std::memcpy(&head, w.data(), w.size() < 8 ? w.size() : 8);
    uint64_t h = 1469598103934665603ull;  // FNV-1a, then a final mix
    for (unsigned char c : w) h = (h ^ c) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    // the length goes into the hash's top byte: equal heads and hashes mean equal lengths
    // for words of up to eight bytes (longer ones compare in full)
    const uint32_t tag = (static_cast<uint32_t>(h) & 0x00ffffffu) |
                         (static_cast<uint32_t>(w.size() < 255 ? w.size() : 255) << 24);
    return Slot{head, tag, static_cast<int32_t>(id)};
  }

 private:
  static bool same(const Slot& slot, const Slot& key, std::string_view w,
                   const std::vector<std::string_view>& words) {
    if (slot.hash != key.hash || slot.head != key.head) return false;
    if (w.size() <= 8) return true;  // the same length (below 255) and the same bytes
    const std::string_view other = words[slot.id];
    if (other.size() != w.size()) return false;
    for (size_t i = 8; i < w.size(); ++i)
      if (other[i] != w[i]) return false;
    return true;
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

struct Section {
  std::vector<float> prob, backoff;
  std::vector<int64_t> rows;    // n * k file-order unigram indices
  std::vector<int64_t> suffix;  // (k >= 3) the line of w2 .. wk in section k - 1
};

constexpr int64_t kBlock = 32;  // lines whose lookups are prefetched before they are made

class Parser {
 public:
  Parser(const char* data, size_t size) : p_(data), end_(data + size) {}

  // false: not in the canonical layout (the Python reader takes over)
  bool run() {
    std::string_view line;
    if (!next(line) || line != "\\data\\") return false;
    const char* mark = p_;
    while (next(line) && line.substr(0, 6) == "ngram ") {
      uint64_t k = 0, n = 0;
      const char* a = line.data() + 6;
      const char* e = line.data() + line.size();
      auto r1 = std::from_chars(a, e, k);
      if (r1.ec != std::errc() || r1.ptr == a || r1.ptr == e || *r1.ptr != '=') return false;
      auto r2 = std::from_chars(r1.ptr + 1, e, n);
      if (r2.ec != std::errc() || r2.ptr == r1.ptr + 1 || r2.ptr != e) return false;
      if (k != counts.size() + 1) return false;
      // every entry takes at least four bytes ("0\ta\n"): a larger count is malformed
      if (n > static_cast<uint64_t>(end_ - p_) / 4) return false;
      counts.push_back(static_cast<int64_t>(n));
      mark = p_;
    }
    p_ = mark;
    if (counts.empty() || counts[0] > INT32_MAX) return false;  // word indices are 32-bit
    const int N = static_cast<int>(counts.size());
    sections.resize(N);
    for (int k = 1; k <= N; ++k) {
      if (!skip_empty() || !next(line) || line != "\\" + std::to_string(k) + "-grams:")
        return false;
      if (!section(k, k < N)) return false;
    }
    if (!skip_empty() || !next(line) || line != "\\end\\") return false;
    end_offset = p_;
    for (int k = 3; k <= N; ++k)
      if (!suffixes(k)) return false;
    return true;
  }

  std::vector<int64_t> counts;
  std::vector<Section> sections;
  std::vector<std::string_view> unigrams;
  const char* end_offset = nullptr;

 private:
  // the next line without its '\n'; false at the end of the buffer
  bool next(std::string_view& line) {
    if (p_ >= end_) return false;
    const char* nl = static_cast<const char*>(std::memchr(p_, '\n', end_ - p_));
    const char* e = nl ? nl : end_;
    line = std::string_view(p_, e - p_);
    p_ = nl ? nl + 1 : end_;
    return true;
  }

  bool skip_empty() {
    while (p_ < end_ && *p_ == '\n') ++p_;
    return p_ < end_;
  }

  static bool same_bytes(std::string_view a, std::string_view b) {  // short words: no call
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i]) return false;
    return true;
  }

  static bool number(const char* a, const char* e, float& out) {
    if (a == e || std::memchr(a, '(', e - a)) return false;  // Python refuses "nan(...)"
    double v;
    auto r = std::from_chars(a, e, v);
    if (r.ec != std::errc() || r.ptr != e) return false;
    out = static_cast<float>(v);
    return true;
  }

  bool section(int k, bool has_backoff) {
    const int64_t n = counts[k - 1];
    Section& s = sections[k - 1];
    s.prob.resize(n);
    s.backoff.assign(n, 0.0f);
    s.rows.resize(static_cast<size_t>(n) * k);
    if (k == 1) {
      unigrams.reserve(n);
      table_ = std::make_unique<WordTable>(static_cast<size_t>(n));
    }
    // KenLM and chainrule write each section grouped by the n-grams' last words, so a word is
    // often the one at the same place on the line before: it is copied from there. The other
    // words are looked up a block of lines later, their slots prefetched (the table is larger
    // than a core's cache).
    struct Pending {
      int64_t* dst;
      std::string_view word;  // empty: copy dst[-k]
      WordTable::Slot key;
    };
    std::vector<Pending> pending(static_cast<size_t>(kBlock) * k);
    size_t n_pending = 0;
    auto resolve = [&]() {
      for (size_t q_i = 0; q_i < n_pending; ++q_i) {
        const Pending& q = pending[q_i];
        if (q.word.empty()) {
          *q.dst = q.dst[-k];
          continue;
        }
        *q.dst = table_->find(q.word, q.key, unigrams);
        if (*q.dst < 0) return false;  // no unigram line: the Python reader words the error
      }
      n_pending = 0;
      return true;
    };
    std::vector<std::string_view> prev(k);
    for (int64_t j = 0; j < n; ++j) {
      if (k > 1 && j % kBlock == 0 && !resolve()) return false;
      if (p_ >= end_) return false;
      const char* a = p_;
      const char* c = a;
      while (c < end_ && *c != '\t' && *c != '\n') ++c;
      if (c == end_ || *c != '\t' || !number(a, c, s.prob[j])) return false;
      ++c;
      int64_t* row = s.rows.data() + static_cast<size_t>(j) * k;
      for (int i = 0; i < k; ++i) {
        const char* w = c;
        while (c < end_ && *c != ' ' && *c != '\t' && *c != '\n') ++c;
        const bool space = c < end_ && *c == ' ';
        // an empty word, too few words (no space before the last) or too many
        if (c == w || space != (i + 1 < k)) return false;
        const std::string_view word(w, c - w);
        if (k == 1) {
          row[0] = j;
          unigrams.push_back(word);
          table_->insert(word, j, unigrams);
        } else if (same_bytes(word, prev[i])) {
          pending[n_pending++] = Pending{row + i, {}, {}};
        } else {
          const WordTable::Slot key = WordTable::make(word, -1);
          table_->prefetch(key);
          pending[n_pending++] = Pending{row + i, word, key};
          prev[i] = word;
        }
        if (space) ++c;
      }
      if (has_backoff) {  // then exactly one more field, the backoff
        if (c == end_ || *c != '\t') return false;
        const char* b = ++c;
        const char* nl = static_cast<const char*>(std::memchr(c, '\n', end_ - c));
        c = nl ? nl : end_;
        if (!number(b, c, s.backoff[j])) return false;
      } else if (c < end_ && *c != '\n') {
        return false;  // a tab after the words of the top order
      }
      p_ = c < end_ ? c + 1 : end_;
    }
    return resolve();
  }

  static uint64_t hash_ids(const int64_t* ids, int m) {
    uint64_t h = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(m);
    for (int i = 0; i < m; ++i) {
      h = (h ^ static_cast<uint64_t>(ids[i])) * 0xbf58476d1ce4e5b9ull;
      h ^= h >> 31;
    }
    return h | 1;  // never 0 (0 marks a copy below)
  }

  // Section k's suffixes: the line in section k - 1 of every k-gram's last k - 1 words, through
  // a hash table of section k - 1 (lines in a row often share their suffix: no lookup then).
  // false for a suffix that is missing or listed twice (the Python reader words the error).
  bool suffixes(int k) {
    const Section& lo = sections[k - 2];
    Section& hi = sections[k - 1];
    const int m = k - 1;
    const int64_t n_lo = static_cast<int64_t>(lo.prob.size());
    if (n_lo > INT32_MAX) return false;
    struct Slot {
      uint32_t tag;
      int32_t line;  // -1: empty
    };
    size_t cap = 16;
    while (cap < static_cast<size_t>(n_lo + n_lo / 3 + 1)) cap <<= 1;
    std::vector<Slot> slots(cap, Slot{0, -1});
    const size_t mask = cap - 1;
    const int64_t* rows = lo.rows.data();
    auto same = [m](const int64_t* a, const int64_t* b) {
      for (int i = 0; i < m; ++i)
        if (a[i] != b[i]) return false;
      return true;
    };
    for (int64_t r = 0; r < n_lo; ++r) {
      const int64_t* t = rows + r * m;
      const uint64_t h = hash_ids(t, m);
      const uint32_t tag = static_cast<uint32_t>(h >> 32);
      for (size_t s = h & mask;; s = (s + 1) & mask) {
        if (slots[s].line < 0) {
          slots[s] = Slot{tag, static_cast<int32_t>(r)};
          break;
        }
        if (slots[s].tag == tag && same(rows + int64_t{slots[s].line} * m, t)) return false;
      }
    }
    const int64_t n_hi = static_cast<int64_t>(hi.prob.size());
    hi.suffix.resize(n_hi);
    int64_t* out = hi.suffix.data();
    std::vector<std::pair<int64_t, uint64_t>> pending;  // (line, hash); hash 0: copy line - 1
    pending.reserve(kBlock);
    auto resolve = [&]() {
      for (const auto& [j, h] : pending) {
        if (h == 0) {
          out[j] = out[j - 1];
          continue;
        }
        const int64_t* t = hi.rows.data() + j * k + 1;
        const uint32_t tag = static_cast<uint32_t>(h >> 32);
        out[j] = -1;
        for (size_t s = h & mask; slots[s].line >= 0; s = (s + 1) & mask) {
          if (slots[s].tag == tag && same(rows + int64_t{slots[s].line} * m, t)) {
            out[j] = slots[s].line;
            break;
          }
        }
        if (out[j] < 0) return false;
      }
      pending.clear();
      return true;
    };
    for (int64_t j = 0; j < n_hi; ++j) {
      if (j % kBlock == 0 && !resolve()) return false;
      const int64_t* t = hi.rows.data() + j * k + 1;
      if (j > 0 && same(t - k, t)) {
        pending.emplace_back(j, 0);
        continue;
      }
      const uint64_t h = hash_ids(t, m);
      __builtin_prefetch(&slots[h & mask]);
      pending.emplace_back(j, h);
    }
    return resolve();
  }

  const char* p_;
  const char* end_;
  std::unique_ptr<WordTable> table_;
};

template <typename T>
py::array_t<T> to_array(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

// (unigram words, [(prob, backoff, rows (n, k), suffix lines or None) per order], end offset)
// or None
py::object parse(py::buffer buf) {
  py::buffer_info info = buf.request();
  if (info.ndim != 1 || info.itemsize != 1) throw std::invalid_argument("expected bytes");
  const char* data = static_cast<const char*>(info.ptr);
  Parser parser(data, static_cast<size_t>(info.size));
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = parser.run();
  }
  if (!ok) return py::none();
  py::list words(parser.unigrams.size());
  for (size_t i = 0; i < parser.unigrams.size(); ++i) {
    const std::string_view w = parser.unigrams[i];
    PyObject* s = PyUnicode_DecodeUTF8(w.data(), static_cast<Py_ssize_t>(w.size()), "strict");
    if (!s) {
      PyErr_Clear();
      return py::none();  // not UTF-8: the Python reader says where
    }
    PyList_SET_ITEM(words.ptr(), static_cast<Py_ssize_t>(i), s);
  }
  py::list sections;
  for (size_t k = 1; k <= parser.sections.size(); ++k) {
    Section& s = parser.sections[k - 1];
    const auto n = static_cast<py::ssize_t>(s.prob.size());
    py::object suffix = py::none();
    if (k >= 3) suffix = to_array(std::move(s.suffix), {n});
    sections.append(py::make_tuple(to_array(std::move(s.prob), {n}),
                                   to_array(std::move(s.backoff), {n}),
                                   to_array(std::move(s.rows), {n, static_cast<py::ssize_t>(k)}),
                                   suffix));
  }
  return py::make_tuple(words, sections, static_cast<int64_t>(parser.end_offset - data));
}

}  // namespace

PYBIND11_MODULE(_arpa_core, m) {
  m.doc() = "chainrule's compiled ARPA reader (KenLM's layout; None for anything else)";
  m.def("parse", &parse, py::arg("data"));
}
