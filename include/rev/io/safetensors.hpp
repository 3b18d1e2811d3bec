// Reading and writing safetensors files (https://github.com/huggingface/safetensors format):
// an 8-byte little-endian header length, a JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// and the raw little-endian data. Every field is validated before any byte is read, so a
// truncated or corrupt file raises rev::io_error and never reads out of bounds.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "rev/core/tensor.hpp"

namespace rev::io {

static_assert(std::endian::native == std::endian::little, "rev::io::safetensors: big-endian hosts are not supported");

enum class dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

inline std::size_t itemsize(dtype t) {
  switch (t) {
    case dtype::F64:
    case dtype::I64: return 8;
    case dtype::F32:
    case dtype::I32: return 4;
    case dtype::F16:
    case dtype::BF16:
    case dtype::I16: return 2;
    default: return 1;
  }
}

inline const char* dtype_name(dtype t) {
  constexpr const char* names[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"};
  return names[static_cast<int>(t)];
}

/// One entry of a safetensors file: its element type, extents and raw little-endian bytes.
struct entry {
  dtype type = dtype::F32;
  Shape shape;
  std::vector<std::byte> bytes;

  /// The values converted to T (floating-point and integer entries alike).
  template <Scalar T>
  Tensor<T> to_tensor() const;
};

/// The contents of a safetensors file, in name order.
struct file {
  std::map<std::string, entry> entries;
  std::map<std::string, std::string> metadata;

  bool contains(const std::string& name) const { return entries.count(name) != 0; }
  const entry& at(const std::string& name) const {
    auto it = entries.find(name);
    check<io_error>(it != entries.end(), "rev::io::safetensors: no tensor named '", name, "'");
    return it->second;
  }
  template <Scalar T = float>
  Tensor<T> tensor(const std::string& name) const {
    return at(name).template to_tensor<T>();
  }
  /// Stores t under `name` as `type` (F32 or F64).
  template <Scalar T>
  void put(const std::string& name, const Tensor<T>& t,
           dtype type = std::is_same_v<T, double> ? dtype::F64 : dtype::F32);
};

namespace detail {

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -v : v;
  }
  std::uint32_t bits = exp == 31 ? (sign | 0x7F800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  return std::bit_cast<float>(bits);
}

inline float bf16_to_float(std::uint16_t h) { return std::bit_cast<float>(std::uint32_t{h} << 16); }

// A small JSON reader for the safetensors header: objects, strings, integers, arrays.
class json_reader {
 public:
  json_reader(std::string_view s, const std::string& origin) : s_(s), origin_(origin) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw io_error(
        rev::detail::concat("rev::io::safetensors: '", origin_, "': corrupt header: ", what, " at byte ", pos_ + 8));
  }
  void ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  bool peek(char c) {
    ws();
    return pos_ < s_.size() && s_[pos_] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) fail("unterminated escape");
        char e = s_[pos_++];
        switch (e) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'u': {
            if (pos_ + 4 > s_.size()) fail("short \\u escape");
            unsigned code = 0;
            for (char h : s_.substr(pos_, 4)) {
              const int v = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
              if (v < 0) fail("bad \\u escape (four hex digits expected)");
              code = code * 16 + static_cast<unsigned>(v);
            }
            pos_ += 4;
            if (code < 0x80) {
              out += static_cast<char>(code);
            } else if (code < 0x800) {
              out += static_cast<char>(0xC0 | (code >> 6));
              out += static_cast<char>(0x80 | (code & 0x3F));
            } else {
              out += static_cast<char>(0xE0 | (code >> 12));
              out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
              out += static_cast<char>(0x80 | (code & 0x3F));
            }
            break;
          }
          default: out += e;
        }
      } else {
        out += c;
      }
    }
    expect('"');
    return out;
  }
  std::uint64_t integer() {
    ws();
    std::uint64_t v = 0;
    std::size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (v > (UINT64_MAX - 9) / 10) fail("integer too large");
      v = v * 10 + static_cast<std::uint64_t>(s_[pos_++] - '0');
    }
    if (pos_ == start) fail("expected a non-negative integer");
    return v;
  }
  std::vector<std::uint64_t> int_array() {
    std::vector<std::uint64_t> v;
    expect('[');
    if (peek(']')) {
      ++pos_;
      return v;
    }
    for (;;) {
      v.push_back(integer());
      if (peek(',')) {
        ++pos_;
        continue;
      }
      expect(']');
      return v;
    }
  }
  // Iterates over the members of an object, calling f(key) positioned at the value.
  template <class F>
  void object(F&& f) {
    expect('{');
    if (peek('}')) {
      ++pos_;
      return;
    }
    for (;;) {
      std::string key = string();
      expect(':');
      f(key);
      if (peek(',')) {
        ++pos_;
        continue;
      }
      expect('}');
      return;
    }
  }
  bool at_end() {
    ws();
    return pos_ == s_.size();
  }

 private:
  std::string_view s_;
  std::string origin_;  // the file, for messages
  std::size_t pos_ = 0;
};

// The dtype named s; false if safetensors has no such name (or rev does not read it).
inline bool parse_dtype(const std::string& s, dtype& out) {
  static const std::map<std::string, dtype> table = {
      {"F64", dtype::F64}, {"F32", dtype::F32}, {"F16", dtype::F16}, {"BF16", dtype::BF16}, {"I64", dtype::I64},
      {"I32", dtype::I32}, {"I16", dtype::I16}, {"I8", dtype::I8},   {"U8", dtype::U8},     {"BOOL", dtype::BOOL}};
  const auto it = table.find(s);
  if (it == table.end()) return false;
  out = it->second;
  return true;
}

inline void json_escape(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace detail

template <Scalar T>
Tensor<T> entry::to_tensor() const {
  Tensor<T> t = Tensor<T>::uninitialized(shape);
  const index_t n = shape.numel();
  const std::byte* p = bytes.data();
  auto load = [&]<class U>(U, index_t i) {
    U u;
    std::memcpy(&u, p + static_cast<std::size_t>(i) * sizeof(U), sizeof(U));
    return u;
  };
  for (index_t i = 0; i < n; ++i) {
    double v = 0;
    switch (type) {
      case dtype::F64: v = load(double{}, i); break;
      case dtype::F32: v = load(float{}, i); break;
      case dtype::F16: v = detail::half_to_float(load(std::uint16_t{}, i)); break;
      case dtype::BF16: v = detail::bf16_to_float(load(std::uint16_t{}, i)); break;
      case dtype::I64: v = static_cast<double>(load(std::int64_t{}, i)); break;
      case dtype::I32: v = load(std::int32_t{}, i); break;
      case dtype::I16: v = load(std::int16_t{}, i); break;
      case dtype::I8: v = load(std::int8_t{}, i); break;
      case dtype::U8:
      case dtype::BOOL: v = load(std::uint8_t{}, i); break;
    }
    t.data()[i] = static_cast<T>(v);
  }
  return t;
}

template <Scalar T>
void file::put(const std::string& name, const Tensor<T>& t, dtype type) {
  check<io_error>(type == dtype::F32 || type == dtype::F64, "rev::io::safetensors: put('", name,
                  "'): only F32 and F64 are written, not ", dtype_name(type));
  entry e;
  e.type = type;
  e.shape = t.shape();
  e.bytes.resize(static_cast<std::size_t>(t.numel()) * itemsize(type));
  for (index_t i = 0; i < t.numel(); ++i) {
    if (type == dtype::F32) {
      float v = static_cast<float>(t.data()[i]);
      std::memcpy(e.bytes.data() + i * 4, &v, 4);
    } else {
      double v = static_cast<double>(t.data()[i]);
      std::memcpy(e.bytes.data() + i * 8, &v, 8);
    }
  }
  entries[name] = std::move(e);
}

/// Parses a safetensors image held in memory. `origin` names it in error messages.
inline file parse(const std::byte* data, std::size_t size, const std::string& origin = "<memory>") {
  auto fail = [&](const auto&... what) -> io_error {
    return io_error(rev::detail::concat("rev::io::safetensors: '", origin, "': ", what...));
  };
  if (size < 8) throw fail("file of ", size, " bytes is shorter than the 8-byte header length");
  std::uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8)
    throw fail("header length ", header_len, " exceeds the ", size - 8,
               " bytes after it (truncated or not a safetensors file)");
  const std::byte* body = data + 8 + header_len;
  const std::uint64_t body_size = size - 8 - header_len;
  file out;
  struct span {
    std::uint64_t begin, end;
    std::string name;
  };
  std::vector<span> spans;  // every entry's bytes, copied only once all of them are checked
  detail::json_reader json(std::string_view(reinterpret_cast<const char*>(data + 8), header_len), origin);
  json.object([&](const std::string& name) {
    if (name == "__metadata__") {
      json.object([&](const std::string& key) { out.metadata[key] = json.string(); });
      return;
    }
    entry e;
    bool has_type = false, has_shape = false, has_offsets = false;
    std::vector<std::uint64_t> offsets;
    json.object([&](const std::string& field) {
      if (field == "dtype") {
        const std::string type = json.string();
        if (!detail::parse_dtype(type, e.type)) throw fail("tensor '", name, "' has unsupported dtype '", type, "'");
        has_type = true;
      } else if (field == "shape") {
        auto dims = json.int_array();
        if (dims.size() > Shape::max_rank) throw fail("tensor '", name, "' has rank above 6");
        for (std::uint64_t d : dims)
          if (d > static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()))
            throw fail("tensor '", name, "' has extent ", d, ", above the largest extent ",
                       std::numeric_limits<index_t>::max());
        e.shape = Shape(dims.begin(), dims.end());
        has_shape = true;
      } else if (field == "data_offsets") {
        offsets = json.int_array();
        has_offsets = true;
      } else {
        throw fail("tensor '", name, "' has unknown field '", field, "'");
      }
    });
    if (!has_type || !has_shape || !has_offsets) throw fail("tensor '", name, "' lacks dtype, shape or data_offsets");
    if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > body_size)
      throw fail("tensor '", name, "' has data_offsets outside the ", body_size, " data bytes");
    // The byte count of the non-zero extents, each partial product bounded (so it cannot
    // overflow) by the data size, or for an empty tensor by what a Tensor can count.
    const bool empty = std::find(e.shape.begin(), e.shape.end(), index_t{0}) != e.shape.end();
    const std::uint64_t bound = empty ? static_cast<std::uint64_t>(std::numeric_limits<index_t>::max()) : body_size;
    std::uint64_t expect = itemsize(e.type);
    for (index_t d : e.shape) {
      if (d == 0) continue;
      if (expect > bound / static_cast<std::uint64_t>(d))
        throw fail("tensor '", name, "' has extents ", e.shape.str(), ", more than the ", body_size,
                   " data bytes hold");
      expect *= static_cast<std::uint64_t>(d);
    }
    if (empty) expect = 0;
    if (offsets[1] - offsets[0] != expect)
      throw fail("tensor '", name, "' has ", (offsets[1] - offsets[0]), " data bytes, expected ", expect, " for ",
                 dtype_name(e.type), " ", e.shape.str());
    if (out.entries.count(name)) throw fail("tensor '", name, "' appears twice");
    spans.push_back({offsets[0], offsets[1], name});
    out.entries[name] = std::move(e);
  });
  if (!json.at_end()) json.fail("trailing characters");
  std::stable_sort(spans.begin(), spans.end(), [](const span& a, const span& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      throw fail("tensors '", spans[i - 1].name, "' and '", spans[i].name, "' overlap");
  // Non-overlapping spans inside the body: the copies below total at most the file's size.
  for (const span& s : spans) out.entries[s.name].bytes.assign(body + s.begin, body + s.end);
  return out;
}

/// Reads a safetensors file.
inline file load(const std::string& path) {
  std::error_code ec;
  check<io_error>(!std::filesystem::is_directory(path, ec), "rev::io::safetensors: '", path,
                  "' is a directory, expected a safetensors file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  check<io_error>(in.good(), "rev::io::safetensors: cannot open '", path, "'");
  const auto size = static_cast<std::size_t>(in.tellg());
  std::vector<std::byte> buf(size);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(size));
  check<io_error>(in.good() || size == 0, "rev::io::safetensors: cannot read '", path, "'");
  return parse(buf.data(), size, path);
}

/// Serialises to the safetensors format (entries in name order, header padded to 8 bytes).
inline std::vector<std::byte> serialize(const file& f) {
  std::string header = "{";
  bool first = true;
  if (!f.metadata.empty()) {
    header += "\"__metadata__\":{";
    for (auto it = f.metadata.begin(); it != f.metadata.end(); ++it) {
      if (it != f.metadata.begin()) header += ',';
      detail::json_escape(header, it->first);
      header += ':';
      detail::json_escape(header, it->second);
    }
    header += '}';
    first = false;
  }
  std::uint64_t offset = 0;
  for (const auto& [name, e] : f.entries) {
    check<io_error>(name != "__metadata__",
                    "rev::io::safetensors: a tensor cannot be named '__metadata__' (the "
                    "format reserves the key for the metadata; the file could not be read back)");
    if (!first) header += ',';
    first = false;
    detail::json_escape(header, name);
    header += ":{\"dtype\":\"";
    header += dtype_name(e.type);
    header += "\",\"shape\":[";
    for (int i = 0; i < e.shape.rank(); ++i) {
      if (i) header += ',';
      header += std::to_string(e.shape[i]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(offset);
    header += ',';
    header += std::to_string(offset + e.bytes.size());
    header += "]}";
    offset += e.bytes.size();
  }
  header += '}';
  while (header.size() % 8) header += ' ';
  std::vector<std::byte> out(8 + header.size() + offset);
  const std::uint64_t len = header.size();
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::byte* p = out.data() + 8 + header.size();
  for (const auto& [name, e] : f.entries) {
    if (!e.bytes.empty()) std::memcpy(p, e.bytes.data(), e.bytes.size());
    p += e.bytes.size();
  }
  return out;
}

namespace detail {
// A name for a temporary file beside `path`, unique across threads and, in practice, processes.
inline std::string temporary_beside(const std::string& path) {
  static std::atomic<std::uint64_t> counter{0};
  const auto stamp = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  const auto thread = static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  return path + ".tmp-" + std::to_string(stamp ^ thread) + "-" + std::to_string(counter++);
}
}  // namespace detail

/// Writes a safetensors file, atomically: the bytes go to a temporary file in the same directory,
/// which is flushed, closed and then renamed over `path`. A failed or interrupted write leaves
/// `path` as it was (the old file, or none) and removes the temporary file when it can.
inline void save(const file& f, const std::string& path) {
  const auto bytes = serialize(f);
  const std::string tmp = detail::temporary_beside(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    check<io_error>(out.is_open(), "rev::io::safetensors: cannot create '", tmp, "' to write '", path, "'");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    out.close();
    if (out.fail()) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw io_error(rev::detail::concat("rev::io::safetensors: cannot write '", path, "' (", bytes.size(),
                                         " bytes; the file is left as it was)"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw io_error(rev::detail::concat("rev::io::safetensors: cannot replace '", path, "': ", ec.message()));
  }
}

}  // namespace rev::io
