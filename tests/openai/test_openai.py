"""The OpenAI Python client against `gimbal serve` in front of `gimbal engine`, called as users
call it: completions, chat, streams with and without usage, the async client, and each error
surfacing as the client's exception class with the server's message. Started by run.sh."""

import asyncio
import math
import os
import signal

import openai
import pytest

PROMPT = "Route this prompt to the least loaded rank."  # 43 characters: 11 tokens at 4 per token
PROMPT_TOKENS = math.ceil(len(PROMPT) / 4)
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name one expert."},
]


def test_models_list_names_the_served_model(client, model):
    assert [m.id for m in client.models.list().data] == [model]


def test_completion(client, model):
    c = client.completions.create(model=model, prompt=PROMPT, max_tokens=5)
    assert c.object == "text_completion"
    assert c.model == model
    assert c.id.startswith("cmpl-")
    assert len(c.choices) == 1
    choice = c.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "length"
    assert len(choice.text.split()) == 5  # one filler word per token
    assert c.usage.prompt_tokens == PROMPT_TOKENS
    assert c.usage.completion_tokens == 5
    assert c.usage.total_tokens == PROMPT_TOKENS + 5


def test_completion_of_token_ids(client, model):
    c = client.completions.create(model=model, prompt=[1, 2, 3, 4, 5, 6, 7], max_tokens=2)
    assert c.usage.prompt_tokens == 7
    assert c.usage.completion_tokens == 2


def test_chat_completion(client, model):
    c = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=4)
    assert c.object == "chat.completion"
    assert c.id.startswith("chatcmpl-")
    assert c.model == model
    choice = c.choices[0]
    assert choice.message.role == "assistant"
    assert len(choice.message.content.split()) == 4
    assert choice.finish_reason == "length"
    assert c.usage.completion_tokens == 4
    assert c.usage.total_tokens == c.usage.prompt_tokens + 4
    assert c.usage.prompt_tokens >= 1


def test_sampling_and_tool_fields_users_send_are_accepted(client, model):
    tools = [{"type": "function", "function": {
        "name": "lookup", "description": "Looks a word up.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}},
                       "required": ["word"]}}}]
    c = client.chat.completions.create(
        model=model, max_tokens=2, temperature=0.7, top_p=0.9, seed=7, stop=["\n", "END"],
        presence_penalty=0.1, frequency_penalty=0.1, logit_bias={"50256": -100}, user="u-1",
        n=1, tools=tools, tool_choice="auto", response_format={"type": "text"},
        messages=[{"role": "user", "content": [{"type": "text", "text": "Look up MoE."}]}],
        extra_body={"top_k": 5, "ignore_eos": True, "repetition_penalty": 1.05})
    assert c.usage.completion_tokens == 2
    assert c.usage.prompt_tokens == 3  # the text part's 12 characters
    c = client.completions.create(model=model, prompt=[PROMPT], max_tokens=2, echo=False,
                                  logprobs=None, best_of=1, suffix=None)
    assert c.usage.prompt_tokens == PROMPT_TOKENS


def test_chat_max_completion_tokens_sets_the_output_length(client, model):
    c = client.chat.completions.create(
        model=model, messages=MESSAGES, max_completion_tokens=3, max_tokens=9)
    assert c.usage.completion_tokens == 3


def test_streamed_completion_with_usage(client, model):
    whole = client.completions.create(model=model, prompt=PROMPT, max_tokens=6)
    chunks = list(client.completions.create(
        model=model, prompt=PROMPT, max_tokens=6, stream=True,
        stream_options={"include_usage": True}))
    token_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert len(token_chunks) == 6
    assert all(len(ch.choices) == 1 and ch.usage is None for ch in token_chunks)
    assert [ch.choices[0].finish_reason for ch in token_chunks] == [None] * 5 + ["length"]
    assert len({ch.id for ch in chunks}) == 1
    # The streamed text is the text of the same request answered whole.
    assert "".join(ch.choices[0].text for ch in token_chunks) == whole.choices[0].text
    assert usage_chunk.choices == []
    assert usage_chunk.usage.prompt_tokens == PROMPT_TOKENS
    assert usage_chunk.usage.completion_tokens == 6
    assert usage_chunk.usage.total_tokens == PROMPT_TOKENS + 6


def test_streamed_chat_with_usage(client, model):
    stream = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=5, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    token_chunks, usage_chunk = chunks[:-1], chunks[-1]
    assert len(token_chunks) == 5
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert token_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content for ch in token_chunks)
    assert len(text.split()) == 5
    assert token_chunks[-1].choices[0].finish_reason == "length"
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens == 5


def test_stream_without_include_usage_carries_no_usage(client, model):
    chunks = list(client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=3, stream=True))
    assert len(chunks) == 3
    assert all(ch.usage is None and len(ch.choices) == 1 for ch in chunks)


def test_chat_stream_helper_accumulates_the_answer(client, model):
    with client.chat.completions.stream(
            model=model, messages=MESSAGES, max_tokens=4,
            stream_options={"include_usage": True}) as stream:
        deltas = [ev.delta for ev in stream if ev.type == "content.delta"]
        # The emulator always runs to max_tokens (finish_reason "length", like vLLM with
        # ignore_eos), which the helper's parsing step refuses; the answer rides on the error.
        with pytest.raises(openai.LengthFinishReasonError) as e:
            stream.get_final_completion()
    final = e.value.completion
    assert len(deltas) == 4
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].message.content == "".join(deltas)
    assert final.usage.completion_tokens == 4


def test_async_client_concurrent_requests(router_url, model):
    async def run():
        async with openai.AsyncOpenAI(base_url=router_url + "/v1", api_key="unused",
                                      max_retries=0, timeout=30) as ac:
            plain = [ac.completions.create(model=model, prompt=PROMPT, max_tokens=n)
                     for n in range(1, 9)]
            streamed = await ac.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=3, stream=True,
                stream_options={"include_usage": True})
            done = await asyncio.gather(*plain)
            chunks = [ch async for ch in streamed]
            return done, chunks

    done, chunks = asyncio.run(run())
    assert [c.usage.completion_tokens for c in done] == list(range(1, 9))
    assert len({c.id for c in done}) == 8
    assert chunks[-1].usage.completion_tokens == 3


# --- errors ------------------------------------------------------------------------------------

def check_error(e, cls, status, message, error_type):
    assert type(e) is cls, f"{type(e).__name__}: {e}"
    assert e.status_code == status
    assert message in e.message  # "Error code: <status> - <the error object>"
    assert e.body["message"] == message
    assert e.type == error_type
    assert e.body["code"] == status  # an integer, as vLLM writes it (the client reads it as a string)


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt=PROMPT, max_tokens=2)
    check_error(e.value, openai.NotFoundError, 404,
                "The model `no-such-model` does not exist.", "not_found_error")


def test_unknown_model_in_a_stream_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, stream=True)
    check_error(e.value, openai.NotFoundError, 404,
                "The model `no-such-model` does not exist.", "not_found_error")


@pytest.mark.parametrize("kwargs, message", [
    # Read by the router's request reader.
    ({"max_tokens": "lots"}, "'max_tokens' must be a non-negative integer"),
    # Passed on to the engine, whose answer the router forwards unchanged.
    ({"max_tokens": 0}, "'max_tokens' must be >= 1"),
    ({"max_tokens": 2, "n": 2}, "only n = 1 is supported by the emulator"),
    ({"max_tokens": 2, "prompt": ["one", "two"]},
     "batched prompts are not supported by the emulator; send one prompt per request"),
])
def test_malformed_completion_is_a_bad_request(client, model, kwargs, message):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, **{"prompt": PROMPT, **kwargs})
    check_error(e.value, openai.BadRequestError, 400, message, "invalid_request_error")


@pytest.mark.parametrize("messages, message", [
    ([], "'messages' must be a non-empty list"),
    ("not a list", "'messages' must be an array of messages"),
])
def test_malformed_chat_is_a_bad_request(client, model, messages, message):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=messages, max_tokens=2)
    check_error(e.value, openai.BadRequestError, 400, message, "invalid_request_error")


def test_request_beyond_the_kv_cache_is_a_bad_request(client, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model, prompt=PROMPT, max_tokens=1 << 30)
    assert e.value.status_code == 400
    assert "exceed the engine's KV cache" in e.value.body["message"]


def test_server_side_failure(victim, model):
    """The engine dies mid-stream: the stream ends with the router's error, which the client raises
    as APIError; the next request finds no engine: InternalServerError (5xx) with the router's
    message."""
    url, pid = victim
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
    stream = client.completions.create(model=model, prompt=PROMPT, max_tokens=5000, stream=True)
    it = iter(stream)
    first = next(it)
    assert first.choices[0].text
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(openai.APIError) as e:
        for _ in it:
            pass
    assert not isinstance(e.value, openai.APIStatusError)  # the stream had begun with 200
    assert e.value.body["code"] == 502
    assert e.value.type == "server_error"
    assert e.value.message == e.value.body["message"] and e.value.message

    with pytest.raises(openai.InternalServerError) as e:
        client.completions.create(model=model, prompt=PROMPT, max_tokens=2)
    assert e.value.status_code in (502, 503)
    assert e.value.body["code"] == e.value.status_code
    assert e.value.type in ("server_error", "service_unavailable_error")
    assert e.value.body["message"]
