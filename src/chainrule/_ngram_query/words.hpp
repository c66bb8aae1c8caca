// Text in for the compiled n-gram query: whitespace-separated words -> ids, many lines per call.
//
// ``WordIds`` is the vocabulary of a whitespace-mode word tokenizer (chainrule/tokenizers/word.py)
// as an open-addressing hash table over the words' UTF-8 bytes. ``encode_lines`` splits every
// line exactly like Python's ``str.split()`` (the 29 code points for which ``str.isspace()`` is
// true), looks each word up (unknown words -> ``unk``) and frames the line as
// ``<s> words </s>``; all lines go into one flat id array with row offsets, the layout
// ``Index::score_flat`` reads. Included by core.cpp (one extension module).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace words {

// length in bytes of the whitespace character starting at s[0] (0 if s[0] starts none);
// ``end`` bounds the read. The UTF-8 comes from Python, so it is well formed.
inline int space_len(const unsigned char* s, const unsigned char* end) {
  const unsigned char c = s[0];
  if (c < 0x80) return ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20)) ? 1 : 0;
  const ptrdiff_t left = end - s;
  if (c == 0xc2 && left >= 2) return (s[1] == 0x85 || s[1] == 0xa0) ? 2 : 0;  // U+0085, U+00A0
  if (left < 3) return 0;
  if (c == 0xe1) return (s[1] == 0x9a && s[2] == 0x80) ? 3 : 0;  // U+1680
  if (c == 0xe2) {
    if (s[1] == 0x80)  // U+2000..U+200A, U+2028, U+2029, U+202F
      return (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf) ? 3 : 0;
    return (s[1] == 0x81 && s[2] == 0x9f) ? 3 : 0;  // U+205F
  }
  if (c == 0xe3) return (s[1] == 0x80 && s[2] == 0x80) ? 3 : 0;  // U+3000
  return 0;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xC2B2AE3D27D4EB4FULL);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 29;
  return h;
}

// the UTF-8 bytes of a Python str (no copy for ASCII strings); throws if it has none
inline const char* utf8_of(PyObject* o, Py_ssize_t* n) {
  if (!PyUnicode_Check(o)) throw std::invalid_argument("every line must be a str");
  const char* s = PyUnicode_AsUTF8AndSize(o, n);
  if (s == nullptr) throw py::error_already_set();
  return s;
}

class WordIds {
 public:
  // words[i] -> id i; None entries (the special tokens, which text never spells) are skipped
  WordIds(py::list words, int64_t unk) : unk_(unk), n_(static_cast<int64_t>(words.size())) {
    std::vector<std::pair<const char*, Py_ssize_t>> w(words.size());
    size_t total = 0;
    for (size_t i = 0; i < words.size(); ++i) {
      PyObject* o = words[i].ptr();
      if (o == Py_None) {
        w[i] = {nullptr, 0};
        continue;
      }
      w[i].first = utf8_of(o, &w[i].second);
      total += static_cast<size_t>(w[i].second);
    }
    pool_.resize(total);
    size_ = 16;  // a power of two, at least twice the words
    while (size_ < 2 * words.size()) size_ <<= 1;
    slots_.assign(size_, Entry{0, 0, 0, -1});
    size_t at = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i].first == nullptr) continue;
      const size_t len = static_cast<size_t>(w[i].second);
      std::memcpy(pool_.data() + at, w[i].first, len);
      const uint64_t h = hash_bytes(w[i].first, len);
      size_t s = h & (size_ - 1);
      while (slots_[s].id >= 0) {
        if (same(slots_[s], h, w[i].first, len))
          throw std::invalid_argument("the vocabulary lists a word twice");
        s = (s + 1) & (size_ - 1);
      }
      slots_[s] = Entry{h, static_cast<uint32_t>(at), static_cast<uint32_t>(len),
                        static_cast<int64_t>(i)};
      at += len;
    }
  }

  int64_t lookup(const char* p, size_t n, uint64_t h) const {
    size_t s = h & (size_ - 1);
    while (slots_[s].id >= 0) {
      if (same(slots_[s], h, p, n)) return slots_[s].id;
      s = (s + 1) & (size_ - 1);
    }
    return unk_;
  }

  // (ids (N,) int64, offsets (lines + 1,) int64, UTF-8 bytes of all lines): line r is
  // ids[offsets[r]:offsets[r + 1]] = [bos, its words' ids..., eos]
  py::tuple encode_lines(py::list lines, int64_t bos, int64_t eos) const {
    const size_t R = lines.size();
    std::vector<std::pair<const char*, Py_ssize_t>> text(R);
    size_t bytes = 0;
    for (size_t r = 0; r < R; ++r) {
      text[r].first = utf8_of(lines[r].ptr(), &text[r].second);
      bytes += static_cast<size_t>(text[r].second);
    }
    py::array_t<int64_t> offsets(static_cast<py::ssize_t>(R + 1));
    int64_t* off = offsets.mutable_data();
    std::vector<int64_t> ids;
    ids.reserve(bytes / 4 + 2 * R + 16);
    struct Word {
      const char* p;
      size_t n;
      uint64_t h;
      size_t at;  // its place in ids
    };
    std::vector<Word> found;
    found.reserve(bytes / 4 + 16);
    {  // the GIL stays held: ``text`` points into the strings of ``lines``
      for (size_t r = 0; r < R; ++r) {
        off[r] = static_cast<int64_t>(ids.size());
        ids.push_back(bos);
        const auto* s = reinterpret_cast<const unsigned char*>(text[r].first);
        const auto* end = s + text[r].second;
        while (s < end) {
          int k;
          while (s < end && (k = space_len(s, end)) > 0) s += k;
          if (s == end) break;
          const auto* w = s;
          while (s < end && (*s > 0x20 ? *s < 0x80 : space_len(s, end) == 0)) ++s;
          while (s < end && space_len(s, end) == 0) {  // non-ASCII: check each lead byte
            ++s;
            while (s < end && *s > 0x20 && *s < 0x80) ++s;
          }
          const auto* p = reinterpret_cast<const char*>(w);
          const size_t n = static_cast<size_t>(s - w);
          found.push_back(Word{p, n, hash_bytes(p, n), ids.size()});
          ids.push_back(unk_);
        }
        ids.push_back(eos);
      }
      off[R] = static_cast<int64_t>(ids.size());
      // the lookups, each slot prefetched a few words ahead so the cache misses overlap
      constexpr size_t kAhead = 16;
      const size_t m = found.size();
      for (size_t i = 0; i < m; ++i) {
        if (i + kAhead < m) __builtin_prefetch(&slots_[found[i + kAhead].h & (size_ - 1)]);
        ids[found[i].at] = lookup(found[i].p, found[i].n, found[i].h);
      }
    }
    py::array_t<int64_t> out(static_cast<py::ssize_t>(ids.size()));
    std::memcpy(out.mutable_data(), ids.data(), ids.size() * sizeof(int64_t));
    return py::make_tuple(out, offsets, static_cast<int64_t>(bytes));
  }

  int64_t size() const { return n_; }

 private:
  struct Entry {
    uint64_t hash;
    uint32_t at, len;
    int64_t id;  // -1 = empty
  };

  bool same(const Entry& e, uint64_t h, const char* p, size_t n) const {
    return e.hash == h && e.len == n && std::memcmp(pool_.data() + e.at, p, n) == 0;
  }

  int64_t unk_, n_;
  size_t size_ = 0;
  std::vector<char> pool_;
  std::vector<Entry> slots_;
};

// the total UTF-8 size of ``lines`` (bytes, without newlines)
inline int64_t utf8_bytes(py::list lines) {
  int64_t total = 0;
  for (py::handle h : lines) {
    Py_ssize_t n;
    utf8_of(h.ptr(), &n);
    total += static_cast<int64_t>(n);
  }
  return total;
}

inline void bind(py::module_& m) {
  py::class_<WordIds>(m, "WordIds")
      .def(py::init<py::list, int64_t>(), py::arg("words"), py::arg("unk_id"))
      .def("encode_lines", &WordIds::encode_lines, py::arg("lines"), py::arg("bos_id"),
           py::arg("eos_id"))
      .def("__len__", &WordIds::size);
  m.def("utf8_bytes", &utf8_bytes, py::arg("lines"));
}

}  // namespace words
