"""The official OpenAI and Anthropic SDKs against `stack serve model`, with strict
response validation: every response must parse as the SDK's own types.

Env: MODEL_URL (http://127.0.0.1:PORT). Keys (from the test's config): sk-dev (plain),
sk-limited (429 on every request), sk-midstream (fails after 2 streamed tokens).
"""
import base64
import os
import struct

import anthropic
import openai

URL = os.environ["MODEL_URL"]
print("openai", openai.__version__, "anthropic", anthropic.__version__)


def oai(key="sk-dev"):
    return openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def ant(key="sk-dev", **kw):
    return anthropic.Anthropic(base_url=URL, api_key=key, max_retries=0, _strict_response_validation=True, **kw)


def openai_chat():
    c = oai()
    ids = [m.id for m in c.models.list()]
    assert "mock-gpt" in ids, ids
    msgs = [{"role": "user", "content": "What is a context window?"}]
    a = c.chat.completions.create(model="mock-gpt", messages=msgs)
    b = c.chat.completions.create(model="mock-gpt", messages=msgs)
    text = a.choices[0].message.content
    assert text == b.choices[0].message.content, "deterministic"
    assert "context window" in text and a.choices[0].finish_reason == "stop"
    assert a.usage.total_tokens == a.usage.prompt_tokens + a.usage.completion_tokens
    chunks = list(c.chat.completions.create(model="mock-gpt", messages=msgs, stream=True,
                                            stream_options={"include_usage": True}))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text, (streamed, text)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == a.usage.completion_tokens
    short = c.chat.completions.create(model="mock-gpt", messages=msgs, max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    # Tool calls from fixtures, plain and streamed.
    tool = c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "the weather in Paris?"}])
    call = tool.choices[0].message.tool_calls[0]
    assert tool.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and '"city":"Paris"' in call.function.arguments
    args = ""
    for ch in c.chat.completions.create(model="mock-gpt", stream=True,
                                        messages=[{"role": "user", "content": "weather?"}]):
        for tc in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
            args += tc.function.arguments or ""
    assert args == call.function.arguments, args


def openai_embeddings():
    c = oai()
    # The SDK asks for base64 by default and decodes it into floats after parsing; its
    # strict mode would refuse the string (as it would from the real API), so this call
    # uses a lenient client.
    lenient = openai.OpenAI(base_url=URL + "/v1", api_key="sk-dev", max_retries=0)
    e = lenient.embeddings.create(model="mock-embed", input=["hello", "world"])
    assert len(e.data) == 2 and len(e.data[0].embedding) == 1536
    floats = c.embeddings.create(model="mock-embed", input=["hello", "world"], encoding_format="float")
    assert all(abs(x - y) < 1e-6 for x, y in zip(e.data[1].embedding, floats.data[1].embedding))
    f = c.embeddings.create(model="mock-embed", input="hello", encoding_format="float", dimensions=8)
    assert len(f.data[0].embedding) == 8
    raw = c.embeddings.with_raw_response.create(model="mock-embed", input="hello", encoding_format="base64")
    b64 = raw.http_response.json()["data"][0]["embedding"]
    floats = struct.unpack("<1536f", base64.b64decode(b64))
    assert abs(floats[0] - e.data[0].embedding[0]) < 1e-6, "little-endian f32"


def openai_responses():
    c = oai()
    r = c.responses.create(model="mock-gpt", input="Tell me about tokens")
    assert r.status == "completed" and "tokens" in r.output_text, r.output_text
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    events = list(c.responses.create(model="mock-gpt", input="Tell me about tokens", stream=True))
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(d.delta for d in deltas) == r.output_text
    assert all(d.logprobs == [] for d in deltas)
    assert events[-1].response.usage.output_tokens == len(deltas)


def openai_errors():
    try:
        oai("sk-wrong").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("a wrong key was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401 and e.body["code"] == "invalid_api_key", e.body
    try:
        oai("sk-limited").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("no rate limit")
    except openai.RateLimitError as e:
        assert e.response.headers["retry-after"] == "1", e.response.headers
        assert e.response.headers["retry-after-ms"] == "1000"
    try:
        list(oai("sk-midstream").chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": "x"}]))
        raise AssertionError("the mid-stream failure was not raised")
    except openai.APIError as e:
        assert "fault" in str(e), e


def anthropic_messages():
    for client in (ant(), ant(key=None, auth_token="sk-dev")):  # x-api-key, then Bearer
        m = client.messages.create(model="mock-claude", max_tokens=256,
                                   messages=[{"role": "user", "content": "What is MCP?"}])
        assert m.stop_reason == "end_turn" and "MCP" in m.content[0].text
        assert m.usage.output_tokens > 0
    with ant().messages.stream(model="mock-claude", max_tokens=256,
                               messages=[{"role": "user", "content": "What is MCP?"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == m.content[0].text and final.usage.output_tokens == m.usage.output_tokens
    events = [e.type for e in ant().messages.create(
        model="mock-claude", max_tokens=256, stream=True, messages=[{"role": "user", "content": "hi"}])]
    assert events[0] == "message_start" and events[-1] == "message_stop", events
    assert events[-2] == "message_delta" and "content_block_delta" in events
    tool = ant().messages.create(model="mock-claude", max_tokens=64,
                                 messages=[{"role": "user", "content": "weather in Paris"}])
    assert tool.stop_reason == "tool_use" and tool.content[0].input == {"city": "Paris"}
    with ant().messages.stream(model="mock-claude", max_tokens=64,
                               messages=[{"role": "user", "content": "weather?"}]) as s:
        final = s.get_final_message()
    assert final.content[0].input == {"city": "Paris"}, final
    n = ant().messages.count_tokens(model="mock-claude", messages=[{"role": "user", "content": "hello world"}])
    assert n.input_tokens > 0


def anthropic_errors():
    try:
        ant("sk-wrong").messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("a wrong key was accepted")
    except anthropic.AuthenticationError as e:
        assert e.body["error"]["type"] == "authentication_error", e.body
    try:
        ant("sk-limited").messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        raise AssertionError("no rate limit")
    except anthropic.RateLimitError as e:
        assert e.response.headers["retry-after"] == "1"
    try:
        ant().messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "overload me"}])
        raise AssertionError("no overload")
    except anthropic.APIStatusError as e:
        assert e.status_code == 529 and e.body["error"]["type"] == "overloaded_error", e.body
    try:
        with ant("sk-midstream").messages.stream(model="m", max_tokens=64,
                                                  messages=[{"role": "user", "content": "x"}]) as s:
            "".join(s.text_stream)
        raise AssertionError("the mid-stream failure was not raised")
    except anthropic.APIStatusError as e:
        assert "overloaded" in str(e).lower() or "fault" in str(e), e
    except anthropic.APIError as e:
        assert "fault" in str(e) or "overloaded" in str(e).lower(), e


for test in (openai_chat, openai_embeddings, openai_responses, openai_errors,
             anthropic_messages, anthropic_errors):
    test()
    print("ok", test.__name__)
