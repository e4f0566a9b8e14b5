// The OpenAI completion request (POST /v1/completions and /v1/chat/completions), read from the
// body as both the router and the emulated engine need it, in one pass without building a document.
//
// What is read, and how it is checked (the first problem ends the parse with a message naming it):
//   model                  a string ("" when absent)
//   stream                 true, false or null
//   stream_options         an object: its boolean `include_usage` is read; other values ignored
//   prompt (completions)   required: a string, a list of strings, a list of token ids, or a list
//                          of token-id lists (a batch); characters and ids are counted
//   messages (chat)        required: a list of objects; each `content` is a string, null or a list
//                          of part objects whose string `text` is counted
//   max_tokens, max_completion_tokens   non-negative integers or null
//   priority               an integer or null (vLLM's; lower runs first)
//   user                   a string gives the affinity key; other values none
//   gimbal_traffic_class   Gimbal's own: a non-negative integer or null
//   n                      read when an integer
// Every other member, of any shape, is skipped; members nested in other values never count as
// top-level ones. A repeated key (top-level, include_usage, a message's content, a part's text)
// counts with its last value only, as in a parsed document. An integer above INT64_MAX is never
// wrapped: max_tokens, max_completion_tokens, priority and gimbal_traffic_class refuse it as out of
// range, a loose prompt id refuses it, an id in an id list counts as a token without being hashed,
// and n ignores it. Nesting deeper than kMaxJsonDepth is refused before it is followed, and a NUL
// byte is never JSON.
//
// The reader only counts: it does not tokenize, and it rejects nothing the OpenAI format allows
// (batches, empty message lists). What one server cannot serve is for that server to refuse.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gimbal::wire {

// Nesting deeper than this is refused by ParseCompletionRequest and by SetPriority.
inline constexpr int kMaxJsonDepth = 128;

// The starting value of the request's FNV-1a hashes (the value Gimbal has always used, so that
// affinity keys and prompt-derived traffic classes do not move between versions).
inline constexpr uint64_t kHashSeed = 1469598103934665603ull;

// Characters each chat message adds to prompt_chars besides its content: its role and template
// tokens, roughly.
inline constexpr int64_t kChatMessageChars = 8;

struct CompletionRequest {
  std::string model;  // "" when absent
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // Characters of text prompts (completions), or of message contents plus kChatMessageChars per
  // message (chat).
  int64_t prompt_chars = 0;
  int64_t prompt_token_ids = 0;  // tokens of prompts given as ids
  // Completions: prompts in `prompt` (a string or one list of ids is 1; a list of strings or id
  // lists counts its elements, loose ids among them counting as one more). Chat: 0.
  int64_t prompts = 0;
  int64_t messages = 0;  // chat: messages in `messages`
  // FNV-1a from kHashSeed over the prompt's text (string prompts, message contents and text
  // parts, in order) and token ids (each as 8 little-endian bytes): equal prompts hash equal.
  uint64_t prompt_hash = kHashSeed;
  int64_t max_tokens = -1;             // -1 when absent or null
  int64_t max_completion_tokens = -1;  // -1 when absent or null
  // The output length asked for: max_completion_tokens when given, else max_tokens, else 0.
  int64_t max_output_tokens = 0;
  int64_t priority = 0;        // the client's own `priority`, 0 when absent
  uint64_t affinity_key = 0;   // FNV-1a of a string `user` (never 0), 0 when absent
  int64_t traffic_class = -1;  // `gimbal_traffic_class`, -1 when absent
  int64_t n = 1;               // `n` when it is an integer
  // The request has a field with which the engine's prompt tokens are not those of the prompt's
  // text (truncate_prompt_tokens, suffix, tools, functions, documents, chat_template[_kwargs], a
  // content part other than text, a message's tool_calls or function_call): its
  // `usage.prompt_tokens` says nothing of characters per token.
  bool prompt_tokens_unlike_text = false;
  // Chained hashes of the prompt's full KV blocks, when asked for (PromptBlockOptions); empty
  // otherwise. See PromptBlockOptions for how the prompt is cut.
  std::vector<uint64_t> block_hashes;
  // The prompt's token ids, when asked for (PromptBlockOptions::keep_token_ids) and the prompt is
  // exactly one list of token ids (a completions prompt given as ids, or a list holding one such
  // list); empty otherwise, text prompts and batches included. At most max_blocks * block_tokens
  // of them (the leading ones) when PromptBlockOptions::max_blocks is set.
  std::vector<int64_t> token_ids;
};

// How the reader cuts a prompt into KV-cache blocks and hashes them, so that a router and an
// engine that read the same prompt with the same options name its blocks alike (a router's prefix
// index and an engine's cache then agree without a tokenizer). block_tokens 0: no block hashes.
//
// The prompt is read as one stream, in order: string prompts, each chat message's content and text
// parts, token ids; each chat message is preceded by kChatMessageChars separator characters (as
// prompt_chars counts it), so two conversations that share their first messages share their
// leading blocks. A token id counts as one token, a character as 1 / chars_per_token of one; a
// block is full after block_tokens tokens. Block k's hash is HashCombine(hash of block k - 1,
// FNV-1a of the block's bytes), starting from kHashSeed, so it names the whole prefix up to the end
// of block k. A partial last block gets no hash. The prompts of a batch hash as one stream.
struct PromptBlockOptions {
  int64_t block_tokens = 0;     // 0: off; else >= 1
  double chars_per_token = 4;   // > 0
  bool keep_token_ids = false;  // fill CompletionRequest::token_ids
  // > 0: hash at most this many leading blocks, and keep at most max_blocks * block_tokens ids
  // (a router needs only a bounded prefix; the rest of a huge prompt costs nothing more).
  int64_t max_blocks = 0;
};

// The affinity key a string `user` gives (CompletionRequest::affinity_key): FNV-1a from kHashSeed,
// never 0.
uint64_t AffinityKeyOf(std::string_view user);

// Parses a /v1/completions (`chat` false) or /v1/chat/completions body. kInvalidArgument with a
// message naming the problem when it is not one JSON object, nests deeper than kMaxJsonDepth, or
// a field has the wrong type or range. With `blocks.block_tokens` > 0, fills block_hashes too.
// Most bodies (plain ASCII strings without escapes, integers of at most 18 digits, literals, JSON
// whitespace) are read by a quick pass of its own; any other is read again from the start by
// nlohmann's parser. The result (every field, or the error and its message) is the same either way
// (completion_request_diff_test.cc and fuzz/completion_body.cc check it).
Result<CompletionRequest> ParseCompletionRequest(std::string_view body, bool chat,
                                                 const PromptBlockOptions& blocks = {});

namespace internal {
// Test-only: ParseCompletionRequest without the quick pass (nlohmann's parser reads every body,
// through the same field reader, after the same NUL check). For every body, every argument, it
// returns exactly what ParseCompletionRequest does; the differential tests hold the two to that.
Result<CompletionRequest> ParseCompletionRequestSlow(std::string_view body, bool chat,
                                                     const PromptBlockOptions& blocks = {});
}  // namespace internal

}  // namespace gimbal::wire
