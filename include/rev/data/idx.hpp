// Reading gzipped IDX files, the format of (Fashion-)MNIST (LeCun et al.,
// http://yann.lecun.com/exdb/mnist/): the magic 0x00 0x00 <type> <rank>, then `rank` big-endian
// uint32 extents, then the elements row-major. Only type 0x08 (unsigned byte) is read.
// Every field is checked against the data, so a corrupt or truncated file raises rev::io_error.
// Needs zlib (link ZLIB::ZLIB; rev::rev does when CMake found it).
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "rev/core/errors.hpp"
#include "rev/core/tensor.hpp"

namespace rev::data {

/// The decompressed contents of the gzip data packed[0, size) (all members, RFC 1952); `origin`
/// names it in errors. io_error if it is not gzip, fails its CRC, or ends before its stream does.
inline std::vector<std::uint8_t> gunzip(const std::uint8_t* packed, std::size_t size, const std::string& origin) {
  const std::string who = "rev::data::gunzip: '" + origin + "'";
  check<io_error>(size >= 18 && packed[0] == 0x1f && packed[1] == 0x8b, who, " is not a gzip file (", size,
                  " bytes, expected the magic 1f 8b and at least 18 bytes)");
  check<io_error>(size <= std::numeric_limits<uInt>::max(), who, ": ", size, " bytes is more than zlib takes at once");

  std::vector<std::uint8_t> out;
  // The last member's ISIZE (size mod 2^32) is a hint for the output size, not trusted: capped by
  // deflate's largest expansion (1032 : 1), so a small file cannot reserve much. Beyond it the
  // output grows as data arrives.
  const std::size_t hint = packed[size - 4] | packed[size - 3] << 8 | packed[size - 2] << 16 |
                           static_cast<std::size_t>(packed[size - 1]) << 24;
  out.reserve(std::min<std::size_t>(hint, 1032 * size));
  z_stream zs{};
  check<io_error>(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, who, ": zlib cannot start inflating");
  zs.next_in = const_cast<std::uint8_t*>(packed);  // zlib's API is not const-correct; it only reads
  zs.avail_in = static_cast<uInt>(size);
  int rc = Z_OK;
  std::vector<std::uint8_t> chunk(std::size_t{1} << 20);
  while (true) {
    zs.next_out = chunk.data();
    zs.avail_out = static_cast<uInt>(chunk.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    out.insert(out.end(), chunk.data(), chunk.data() + (chunk.size() - zs.avail_out));
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      rc = inflateReset(&zs);  // another gzip member follows
    }
    if (rc != Z_OK) break;
    if (zs.avail_in == 0 && zs.avail_out != 0) {
      rc = Z_BUF_ERROR;  // input exhausted in the middle of the stream
      break;
    }
  }
  const std::string msg = zs.msg ? zs.msg : "";
  inflateEnd(&zs);
  check<io_error>(rc == Z_STREAM_END, who, " is ",
                  rc == Z_BUF_ERROR ? "truncated (the gzip stream ends early)" : "a corrupt gzip file",
                  msg.empty() ? "" : " (zlib: ", msg, msg.empty() ? "" : ")");
  return out;
}

/// The decompressed contents of a gzip file (all members, RFC 1952). io_error if the file cannot be
/// read, is not gzip, fails its CRC, or ends before its stream does.
inline std::vector<std::uint8_t> read_gzip(const std::string& path) {
  std::error_code ec;
  check<io_error>(!std::filesystem::is_directory(path, ec), "rev::data::read_gzip: '", path,
                  "' is a directory, expected a gzip file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  check<io_error>(in.good(), "rev::data::read_gzip: cannot open '", path, "'");
  std::vector<std::uint8_t> packed(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(packed.data()), static_cast<std::streamsize>(packed.size()));
  check<io_error>(in.good() || packed.empty(), "rev::data::read_gzip: cannot read '", path, "'");
  return gunzip(packed.data(), packed.size(), path);
}

/// An IDX array of unsigned bytes.
struct idx_array {
  std::vector<index_t> dims;
  std::vector<std::uint8_t> data;
};

/// Parses an IDX image of unsigned bytes that must have `rank` extents; `origin` names it in errors.
inline idx_array parse_idx(const std::vector<std::uint8_t>& bytes, int rank, const std::string& origin) {
  const std::string who = "rev::data::parse_idx: '" + origin + "'";
  check<io_error>(bytes.size() >= 4, who, ": ", bytes.size(), " bytes is too short for the 4-byte IDX magic");
  check<io_error>(bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0x08, who, ": bad IDX magic ", int{bytes[0]}, " ",
                  int{bytes[1]}, " ", int{bytes[2]}, ", expected 0 0 8 (unsigned bytes)");
  check<io_error>(bytes[3] == rank, who, ": the IDX array has rank ", int{bytes[3]}, ", expected ", rank);
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(rank);
  check<io_error>(bytes.size() >= header, who, ": ", bytes.size(), " bytes is too short for the ", header,
                  "-byte IDX header");
  idx_array a;
  std::uint64_t n = 1;
  for (int i = 0; i < rank; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    const std::uint32_t d = std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
    a.dims.push_back(static_cast<index_t>(d));
  }
  for (index_t d : a.dims) {
    // Checked before multiplying: 65536 x 2^24 x 2^24 must not wrap around to 0.
    check<io_error>(d == 0 || n <= (std::uint64_t{1} << 40) / static_cast<std::uint64_t>(d), who, ": the IDX extents ",
                    Shape(a.dims.begin(), a.dims.end()), " hold more than 2^40 elements");
    n *= static_cast<std::uint64_t>(d);
  }
  check<io_error>(bytes.size() - header == n, who, ": ", bytes.size() - header, " data bytes, expected ", n,
                  " for the extents in the header (", bytes.size() - header < n ? "truncated" : "trailing bytes", ")");
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

/// Reads a gzipped IDX file of unsigned bytes with `rank` extents.
inline idx_array read_idx_gz(const std::string& path, int rank) { return parse_idx(read_gzip(path), rank, path); }

}  // namespace rev::data
