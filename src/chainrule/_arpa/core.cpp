// chainrule's compiled ARPA reader: the n-gram sections of an ARPA file, in any layout the
// Python reader (chainrule/models/ngram/arpa.py) reads, parsed straight from the bytes into
// numpy arrays, words as the file-order index of their unigram line.
//
// It follows the Python reader's rules: lines end at '\n'; fields are separated by runs of ASCII
// whitespace (space, tab, '\r', '\v', '\f', 0x1c-0x1f), so KenLM's tabs, SRILM's lines without a
// backoff, CRLF line ends and extra spaces all read; any text before ``\data\`` and after
// ``\end\`` is ignored; count lines ``ngram k=n``, then each section after any empty lines; the
// n-grams of a section in any order (sorted or not). Numbers are read with std::from_chars
// (correctly rounded, like Python's float(), then rounded to float32 like numpy). Anything it
// does not read exactly as the Python reader would -- a malformed line, a number from_chars does
// not read whole, a word without a unigram line, a missing suffix, a unigram that is not UTF-8,
// a header that only Unicode whitespace would make valid -- makes ``parse`` return None and the
// Python reader does the whole job, so it alone words the errors and results never depend on
// which reader ran.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "radix.h"
#include "suffix.h"
#include "word_table.h"

namespace py = pybind11;
using chainrule_arpa::kBlock;
using chainrule_arpa::Section;
using chainrule_arpa::WordTable;

namespace {

// byte classes: 0 part of a field, 1 whitespace between fields, 2 the end of a line
struct Classes {
  unsigned char of[256] = {};
  constexpr Classes() {
    for (unsigned char c : {' ', '\t', '\r', '\v', '\f', '\x1c', '\x1d', '\x1e', '\x1f'}) of[c] = 1;
    of[static_cast<unsigned char>('\n')] = 2;
  }
};
constexpr Classes kClass;
inline bool is_space(char c) { return kClass.of[static_cast<unsigned char>(c)] == 1; }
inline bool is_field(char c) { return kClass.of[static_cast<unsigned char>(c)] == 0; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

class Parser {
 public:
  Parser(const char* data, size_t size) : begin_(data), p_(data), end_(data + size) {}

  // false: a file the Python reader must read (it refuses it or reads it differently)
  bool run() {
    std::string_view line;
    for (;;) {  // the Python reader skips every line before the one that is \data\ .
      const char* at = p_;
      if (!next(line)) return false;
      if (trim(line) == "\\data\\") {
        start_offset = at;
        break;
      }
      if (maybe_data(trim(line))) return false;  // Unicode spaces around it? Python decides
    }
    const char* mark = p_;
    while (next(line)) {
      const std::string_view t = trim(line);
      if (t.substr(0, 6) != "ngram ") break;
      uint64_t k = 0, n = 0;
      if (!count_line(t.substr(6), k, n) || k != counts.size() + 1) return false;
      // every entry takes at least four bytes ("0 a\n"): a larger count is malformed
      if (n > static_cast<uint64_t>(end_ - p_) / 4) return false;
      counts.push_back(static_cast<int64_t>(n));
      mark = p_;
    }
    p_ = mark;
    if (counts.empty() || counts[0] > INT32_MAX) return false;  // word indices are 32-bit
    const int N = static_cast<int>(counts.size());
    sections.resize(N);
    for (int k = 1; k <= N; ++k) {
      if (!skip_empty() || !next(line) || trim(line) != "\\" + std::to_string(k) + "-grams:")
        return false;
      if (!section(k, k < N)) return false;
    }
    if (!skip_empty() || !next(line) || trim(line) != "\\end\\") return false;
    end_offset = p_;
    for (int k = 3; k <= N; ++k)
      if (!chainrule_arpa::find_suffixes(sections[k - 2], sections[k - 1], k)) return false;
    return true;
  }

  std::vector<int64_t> counts;
  std::vector<Section> sections;
  std::vector<std::string_view> unigrams;
  const char* start_offset = nullptr;  // the \data\ line
  const char* end_offset = nullptr;    // after the \end\ line

  int64_t offset(const char* at) const { return static_cast<int64_t>(at - begin_); }

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

  // past lines of whitespace only; false at the end of the buffer
  bool skip_empty() {
    for (;;) {
      const char* c = p_;
      while (c < end_ && is_space(*c)) ++c;
      if (c == end_) return false;
      if (*c != '\n') return true;
      p_ = c + 1;
    }
  }

  // whether Python's str.strip() (Unicode whitespace too) might make ``t`` \data\ : only
  // non-ASCII bytes around it
  static bool maybe_data(std::string_view t) {
    const size_t at = t.find("\\data\\");
    if (at == std::string_view::npos) return false;
    for (size_t i = 0; i < t.size(); ++i)
      if ((i < at || i >= at + 6) && static_cast<unsigned char>(t[i]) < 0x80) return false;
    return true;
  }

  // "k=n" with optional spaces around either number (int() strips them); digits only
  static bool count_line(std::string_view spec, uint64_t& k, uint64_t& n) {
    const size_t eq = spec.find('=');
    if (eq == std::string_view::npos) return false;
    return whole_uint(trim(spec.substr(0, eq)), k) && whole_uint(trim(spec.substr(eq + 1)), n);
  }

  static bool whole_uint(std::string_view s, uint64_t& v) {
    if (s.empty() || s.front() < '0' || s.front() > '9') return false;  // no sign
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return r.ec == std::errc() && r.ptr == s.data() + s.size();
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

  // one field from c (past leading whitespace); [a, c) is the field, empty at the line's end
  const char* field(const char*& c) const {
    while (c < end_ && is_space(*c)) ++c;
    const char* a = c;
    while (c < end_ && is_field(*c)) ++c;
    return a;
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
    // Files grouped by the n-grams' last words (KenLM's, chainrule's) often have a word at the
    // same place as on the line before: it is copied from there. The other words are looked up
    // a block of lines later, their slots prefetched (the table is larger than a core's cache).
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
      const char* c = p_;
      const char* a = field(c);  // the log10 probability
      if (!number(a, c, s.prob[j])) return false;
      int64_t* row = s.rows.data() + static_cast<size_t>(j) * k;
      for (int i = 0; i < k; ++i) {
        const char* w = field(c);
        if (c == w) return false;  // fewer than k words
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
      }
      const char* b = field(c);  // the backoff, optional below the top order
      if (c != b) {
        if (!has_backoff || !number(b, c, s.backoff[j])) return false;
        if (field(c) != c) return false;  // a field more
      }
      if (c < end_) ++c;  // c is at the '\n'
      p_ = c;
    }
    return resolve();
  }

  const char* begin_;
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

// (unigram words, [(prob, backoff, rows (n, k), suffix lines or None) per order], offset of the
// \data\ line, offset after the \end\ line) or None
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
  return py::make_tuple(words, sections, parser.offset(parser.start_offset),
                        parser.offset(parser.end_offset));
}

// the stable argsort of non-negative int64 keys (the same permutation as numpy's)
py::array_t<int64_t> argsort(py::array_t<int64_t, py::array::c_style | py::array::forcecast> keys) {
  if (keys.ndim() != 1) throw std::invalid_argument("expected a 1-d array");
  const int64_t n = keys.shape(0);
  py::array_t<int64_t> order(n);
  const int64_t* k = keys.data();
  int64_t* o = order.mutable_data();
  for (int64_t i = 0; i < n; ++i)
    if (k[i] < 0) throw std::invalid_argument("keys must be non-negative");
  {
    py::gil_scoped_release nogil;
    chainrule_arpa::radix_argsort(k, n, o);
  }
  return order;
}

}  // namespace

PYBIND11_MODULE(_arpa_core, m) {
  m.doc() = "chainrule's compiled ARPA reader (None where the Python reader must read the file)";
  m.def("parse", &parse, py::arg("data"));
  m.def("argsort", &argsort, py::arg("keys"));
}
