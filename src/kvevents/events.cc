#include "kvevents/events.h"

#define MSGPACK_NO_BOOST
#include <bit>
#include <exception>

#include <msgpack.hpp>

#include "core/json_message.h"

namespace gimbal::kvevents {

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void PackStr(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void PackOptStr(Packer& pk, const std::optional<std::string>& s) {
  if (s) {
    PackStr(pk, *s);
  } else {
    pk.pack_nil();
  }
}

void PackOptInt(Packer& pk, const std::optional<int64_t>& v) {
  if (v) {
    pk.pack_int64(*v);
  } else {
    pk.pack_nil();
  }
}

// `group_idx` has a default in vLLM's event types, so it is sent only when set (last field).
void PackGroupIdx(Packer& pk, const std::optional<int64_t>& group_idx) {
  if (!group_idx) return;
  PackStr(pk, "group_idx");
  pk.pack_int64(*group_idx);
}

void PackHashes(Packer& pk, const std::vector<uint64_t>& hashes) {
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (uint64_t h : hashes) pk.pack_uint64(h);
}

// vLLM encodes events as tagged maps: "type" first, then the fields in declaration order; fields
// without a default are always present (nil when unset), defaulted ones only when set. Its encoder
// sizes a map's header for every field the struct could send, so BlockStored (17 with the tag)
// always gets a 3-byte map16 header, even when fewer than 16 entries follow.
void PackEvent(msgpack::sbuffer& buf, Packer& pk, const BlockStored& e) {
  const uint16_t n = 8 + (e.group_idx ? 1 : 0);
  const char header[3] = {static_cast<char>(0xde), 0, static_cast<char>(n)};
  buf.write(header, sizeof(header));
  PackStr(pk, "type");
  PackStr(pk, "BlockStored");
  PackStr(pk, "block_hashes");
  PackHashes(pk, e.block_hashes);
  PackStr(pk, "parent_block_hash");
  if (e.parent_block_hash) {
    pk.pack_uint64(*e.parent_block_hash);
  } else {
    pk.pack_nil();
  }
  PackStr(pk, "token_ids");
  pk.pack_array(static_cast<uint32_t>(e.token_ids.size()));
  for (int64_t t : e.token_ids) pk.pack_int64(t);
  PackStr(pk, "block_size");
  pk.pack_int64(e.block_size);
  PackStr(pk, "lora_id");
  PackOptInt(pk, e.lora_id);
  PackStr(pk, "medium");
  PackOptStr(pk, e.medium);
  PackStr(pk, "lora_name");
  PackOptStr(pk, e.lora_name);
  PackGroupIdx(pk, e.group_idx);
}

void PackEvent(msgpack::sbuffer&, Packer& pk, const BlockRemoved& e) {
  pk.pack_map(3 + (e.group_idx ? 1 : 0));
  PackStr(pk, "type");
  PackStr(pk, "BlockRemoved");
  PackStr(pk, "block_hashes");
  PackHashes(pk, e.block_hashes);
  PackStr(pk, "medium");
  PackOptStr(pk, e.medium);
  PackGroupIdx(pk, e.group_idx);
}

void PackEvent(msgpack::sbuffer&, Packer& pk, const AllBlocksCleared&) {
  pk.pack_map(1);
  PackStr(pk, "type");
  PackStr(pk, "AllBlocksCleared");
}

// ---- decoding: every accessor checks the msgpack type and says what it expected ----

using Obj = msgpack::object;

std::string TypeName(const Obj& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "string";
    case msgpack::type::BIN:
      return "bytes";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    default:
      return "extension";
  }
}

Status Expected(const std::string& what, const std::string& field, const Obj& got) {
  return InvalidArgument(std::string("'") + field + "': expected " + what + ", got " +
                         TypeName(got));
}

Result<uint64_t> Hash(const Obj& o, const std::string& field) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) return o.via.u64;
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<uint64_t>(o.via.i64);
  if (o.type == msgpack::type::BIN) {
    if (o.via.bin.size == 0) return InvalidArgument(std::string("'") + field + "': empty hash");
    uint64_t h = 0;
    const uint32_t n = o.via.bin.size;
    for (uint32_t i = n > 8 ? n - 8 : 0; i < n; ++i) {
      h = (h << 8) | static_cast<uint8_t>(o.via.bin.ptr[i]);
    }
    return h;
  }
  return Expected("an integer or bytes block hash", field, o);
}

Result<int64_t> Int(const Obj& o, const std::string& field) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(INT64_MAX)) {
      return InvalidArgument(std::string("'") + field + "': integer out of range");
    }
    return static_cast<int64_t>(o.via.u64);
  }
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  return Expected("an integer", field, o);
}

Status OptInt(const Obj& o, const std::string& field, std::optional<int64_t>& out) {
  if (o.type == msgpack::type::NIL) {
    out.reset();
    return {};
  }
  auto v = Int(o, field);
  if (!v.ok()) return v.status();
  out = *v;
  return {};
}

Status OptStr(const Obj& o, const std::string& field, std::optional<std::string>& out) {
  if (o.type == msgpack::type::NIL) {
    out.reset();
    return {};
  }
  if (o.type != msgpack::type::STR) return Expected("a string or nil", field, o);
  out = std::string(o.via.str.ptr, o.via.str.size);
  return {};
}

Status Hashes(const Obj& o, const std::string& field, std::vector<uint64_t>& out) {
  if (o.type != msgpack::type::ARRAY) return Expected("an array of block hashes", field, o);
  out.clear();
  out.reserve(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    auto h = Hash(o.via.array.ptr[i], field);
    if (!h.ok()) return h.status();
    out.push_back(*h);
  }
  return {};
}

Status TokenIds(const Obj& o, std::vector<int64_t>& out) {
  if (o.type != msgpack::type::ARRAY) return Expected("an array of token ids", "token_ids", o);
  out.clear();
  out.reserve(o.via.array.size);
  for (uint32_t i = 0; i < o.via.array.size; ++i) {
    auto t = Int(o.via.array.ptr[i], "token_ids");
    if (!t.ok()) return t.status();
    out.push_back(*t);
  }
  return {};
}

bool IsStr(const Obj& o, std::string_view s) {
  return o.type == msgpack::type::STR && std::string_view(o.via.str.ptr, o.via.str.size) == s;
}

// One named field of an event; `seen` records the required ones.
Status StoredField(std::string_view key, const Obj& v, BlockStored& e, unsigned& seen) {
  if (key == "block_hashes") {
    seen |= 1;
    return Hashes(v, "block_hashes", e.block_hashes);
  }
  if (key == "parent_block_hash") {
    if (v.type == msgpack::type::NIL) {
      e.parent_block_hash.reset();
      return {};
    }
    auto h = Hash(v, "parent_block_hash");
    if (!h.ok()) return h.status();
    e.parent_block_hash = *h;
    return {};
  }
  if (key == "token_ids") return TokenIds(v, e.token_ids);
  if (key == "block_size") {
    seen |= 2;
    auto n = Int(v, "block_size");
    if (!n.ok()) return n.status();
    e.block_size = *n;
    return {};
  }
  if (key == "lora_id") return OptInt(v, "lora_id", e.lora_id);
  if (key == "medium") return OptStr(v, "medium", e.medium);
  if (key == "lora_name") return OptStr(v, "lora_name", e.lora_name);
  if (key == "group_idx") return OptInt(v, "group_idx", e.group_idx);
  return {};  // a field this reader does not use
}

Status RemovedField(std::string_view key, const Obj& v, BlockRemoved& e, unsigned& seen) {
  if (key == "block_hashes") {
    seen |= 1;
    return Hashes(v, "block_hashes", e.block_hashes);
  }
  if (key == "medium") return OptStr(v, "medium", e.medium);
  if (key == "group_idx") return OptInt(v, "group_idx", e.group_idx);
  return {};
}

Result<Event> MapEvent(const Obj& o) {
  const auto& m = o.via.map;
  const Obj* type = nullptr;
  for (uint32_t i = 0; i < m.size; ++i) {
    if (IsStr(m.ptr[i].key, "type")) type = &m.ptr[i].val;
  }
  if (!type || type->type != msgpack::type::STR) {
    return InvalidArgument("an event map has no string 'type' entry");
  }
  const std::string_view kind(type->via.str.ptr, type->via.str.size);
  auto for_fields = [&](auto&& fn) -> Status {
    for (uint32_t i = 0; i < m.size; ++i) {
      const Obj& k = m.ptr[i].key;
      if (k.type != msgpack::type::STR) return Expected("string keys", "event", k);
      GIMBAL_RETURN_IF_ERROR(fn(std::string_view(k.via.str.ptr, k.via.str.size), m.ptr[i].val));
    }
    return {};
  };
  unsigned seen = 0;
  if (kind == "BlockStored") {
    BlockStored e;
    GIMBAL_RETURN_IF_ERROR(
        for_fields([&](std::string_view k, const Obj& v) { return StoredField(k, v, e, seen); }));
    if (seen != 3) return InvalidArgument("BlockStored without block_hashes or block_size");
    return Event(std::move(e));
  }
  if (kind == "BlockRemoved") {
    BlockRemoved e;
    GIMBAL_RETURN_IF_ERROR(
        for_fields([&](std::string_view k, const Obj& v) { return RemovedField(k, v, e, seen); }));
    if (seen != 1) return InvalidArgument("BlockRemoved without block_hashes");
    return Event(std::move(e));
  }
  if (kind == "AllBlocksCleared") return Event(AllBlocksCleared{});
  // Quoted, escaped and cut: the type is the engine's bytes, kept as the feed's last problem.
  return InvalidArgument("unknown event type " + JsonForMessage(std::string(kind)));
}

// Older vLLM releases sent events as arrays: [tag, fields in declaration order...].
Result<Event> ArrayEvent(const Obj& o) {
  const auto& a = o.via.array;
  if (a.size == 0 || a.ptr[0].type != msgpack::type::STR) {
    return InvalidArgument("an event array does not start with its type name");
  }
  const std::string_view kind(a.ptr[0].via.str.ptr, a.ptr[0].via.str.size);
  static constexpr std::string_view kStored[] = {"block_hashes", "parent_block_hash", "token_ids",
                                                 "block_size",   "lora_id",           "medium",
                                                 "lora_name"};
  static constexpr std::string_view kRemoved[] = {"block_hashes", "medium"};
  unsigned seen = 0;
  if (kind == "BlockStored") {
    BlockStored e;
    for (uint32_t i = 1; i < a.size && i <= std::size(kStored); ++i) {
      GIMBAL_RETURN_IF_ERROR(StoredField(kStored[i - 1], a.ptr[i], e, seen));
    }
    if (seen != 3) return InvalidArgument("BlockStored without block_hashes or block_size");
    return Event(std::move(e));
  }
  if (kind == "BlockRemoved") {
    BlockRemoved e;
    for (uint32_t i = 1; i < a.size && i <= std::size(kRemoved); ++i) {
      GIMBAL_RETURN_IF_ERROR(RemovedField(kRemoved[i - 1], a.ptr[i], e, seen));
    }
    if (seen != 1) return InvalidArgument("BlockRemoved without block_hashes");
    return Event(std::move(e));
  }
  if (kind == "AllBlocksCleared") return Event(AllBlocksCleared{});
  // Quoted, escaped and cut: the type is the engine's bytes, kept as the feed's last problem.
  return InvalidArgument("unknown event type " + JsonForMessage(std::string(kind)));
}

Result<EventBatch> DecodeObject(const Obj& o) {
  if (o.type != msgpack::type::ARRAY) return Expected("an array", "batch", o);
  const auto& a = o.via.array;
  if (a.size < 2) return InvalidArgument("a batch needs at least [ts, events]");
  EventBatch b;
  const Obj& ts = a.ptr[0];
  if (ts.type == msgpack::type::FLOAT64 || ts.type == msgpack::type::FLOAT32) {
    b.ts = ts.via.f64;
  } else if (ts.type == msgpack::type::POSITIVE_INTEGER) {
    b.ts = static_cast<double>(ts.via.u64);
  } else if (ts.type == msgpack::type::NEGATIVE_INTEGER) {  // as msgpack-c packs an integral double
    b.ts = static_cast<double>(ts.via.i64);
  } else {
    return Expected("a number", "ts", ts);
  }
  const Obj& ev = a.ptr[1];
  if (ev.type != msgpack::type::ARRAY) return Expected("an array", "events", ev);
  b.events.reserve(ev.via.array.size);
  for (uint32_t i = 0; i < ev.via.array.size; ++i) {
    const Obj& e = ev.via.array.ptr[i];
    Result<Event> r = e.type == msgpack::type::MAP ? MapEvent(e)
                      : e.type == msgpack::type::ARRAY
                          ? ArrayEvent(e)
                          : Result<Event>(Expected("a map", "event", e));
    if (!r.ok()) return r.status().WithContext("event " + std::to_string(i));
    b.events.push_back(std::move(*r));
  }
  if (a.size >= 3) {
    GIMBAL_RETURN_IF_ERROR(OptInt(a.ptr[2], "data_parallel_rank", b.data_parallel_rank));
  }
  return b;
}

}  // namespace

template <typename E, typename Make>
void EventCollector::Append(uint64_t hash, Make make) {
  if (!events_.empty()) {
    if (auto* e = std::get_if<E>(&events_.back())) {
      e->block_hashes.push_back(hash);
      return;
    }
  }
  E e = make();
  e.block_hashes.push_back(hash);
  events_.emplace_back(std::move(e));
}

void EventCollector::Stored(uint64_t hash) {
  Append<BlockStored>(hash, [&] {
    BlockStored s;
    s.block_size = block_size_;
    s.medium = medium_;
    return s;
  });
}

void EventCollector::Removed(uint64_t hash) {
  Append<BlockRemoved>(hash, [&] {
    BlockRemoved r;
    r.medium = medium_;
    return r;
  });
}

EventBatch EventCollector::Take(double ts) {
  EventBatch b;
  b.ts = ts;
  b.events.swap(events_);
  return b;
}

std::string EncodeBatch(const EventBatch& batch) {
  msgpack::sbuffer buf;
  Packer pk(&buf);
  pk.pack_array(3);
  // Always a float64, as vLLM's msgspec writes a float field: msgpack-c's pack_double writes an
  // integral value as an integer (and -0.0 as 0).
  buf.write("\xcb", 1);
  const std::string bits = EncodeSeq(std::bit_cast<int64_t>(batch.ts));  // 8 bytes, big-endian
  buf.write(bits.data(), bits.size());
  pk.pack_array(static_cast<uint32_t>(batch.events.size()));
  for (const Event& e : batch.events) {
    std::visit([&](const auto& x) { PackEvent(buf, pk, x); }, e);
  }
  PackOptInt(pk, batch.data_parallel_rank);
  return std::string(buf.data(), buf.size());
}

namespace {

// Counts a payload's array and map entries without building anything (a first pass): decoding
// builds a 16-byte object per entry, then copies each hash, so a 16 MiB batch of one-byte hashes
// grew the router by 500 MB. The limits below bound each array, not their sum.
// A single array or map over the decoder's own limits is left to it, which names that limit.
struct EntryCounter : msgpack::null_visitor {
  bool start_array(uint32_t n) { return Add(n, 1u << 20); }
  bool start_map(uint32_t n) { return Add(n, 256); }
  bool Add(uint32_t n, uint32_t own_limit) {
    if (n > own_limit) return false;
    entries += n;
    return entries <= kMaxBatchEntries;
  }
  void parse_error(size_t, size_t) {}
  void insufficient_bytes(size_t, size_t) {}
  uint64_t entries = 0;
};

}  // namespace

Result<EventBatch> DecodeBatch(std::string_view payload) {
  // Limits keep a hostile length prefix from allocating gigabytes before the data runs out.
  const msgpack::unpack_limit limit(/*array=*/1u << 20, /*map=*/256, /*str=*/1u << 16,
                                    /*bin=*/1u << 16, /*ext=*/0, /*depth=*/16);
  try {
    {
      EntryCounter counter;
      std::size_t at = 0;
      msgpack::parse(payload.data(), payload.size(), at, counter);
      if (counter.entries > kMaxBatchEntries) {
        return InvalidArgument("a batch of more than " + std::to_string(kMaxBatchEntries) +
                               " array and map entries (block hashes, events)");
      }
    }
    std::size_t off = 0;
    msgpack::object_handle h =
        msgpack::unpack(payload.data(), payload.size(), off, nullptr, nullptr, limit);
    if (off != payload.size()) {
      return InvalidArgument(std::to_string(payload.size() - off) +
                             " trailing bytes after the batch");
    }
    return DecodeObject(h.get());
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("not a msgpack batch: ") + e.what());
  }
}

std::string EncodeSeq(int64_t seq) {
  std::string out(8, '\0');
  auto v = static_cast<uint64_t>(seq);
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::optional<int64_t> DecodeSeq(std::string_view frame) {
  if (frame.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (char c : frame) v = (v << 8) | static_cast<uint8_t>(c);
  return static_cast<int64_t>(v);
}

}  // namespace gimbal::kvevents
