"""Record and replay through `stack run`: the official OpenAI and Anthropic SDKs call the
stack's gateway (OPENAI_BASE_URL / ANTHROPIC_BASE_URL and the keys come from `stack run`):
plain, streamed, a tool loop and a structured output on each API. Every answer is written
to the JSON file OUT — plain ones as the raw body the SDK received, streams as their parsed
events with the time each arrived — so the test can compare a recording run with a replay.
PROMPT (optional) changes the first question, to ask for what was never recorded. With
CROSS=1 (a replay), plain questions are also asked streamed and streamed ones plain: the
mock splits and assembles the recordings, and the texts must agree.
"""
import json
import os
import time

import anthropic
import openai
import pydantic

oai = openai.OpenAI(max_retries=0, _strict_response_validation=True)
ant = anthropic.Anthropic(max_retries=0, _strict_response_validation=True)
out = {}


def plain(name, raw):
    body = raw.http_response.text
    out[name] = {"kind": "plain", "body": body}
    return raw.parse()


def stream(name, events):
    started = time.monotonic()
    got, times = [], []
    for e in events:
        times.append(round((time.monotonic() - started) * 1000, 1))
        got.append(e.model_dump(mode="json"))
    out[name] = {"kind": "stream", "events": got, "times": times}
    return got


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
question = os.environ.get("PROMPT", "Hello there, tell me about the sea")

# --- OpenAI ------------------------------------------------------------------------------
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
p = plain("openai plain", oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs, max_tokens=64))
assert p.choices[0].message.content and p.usage.completion_tokens > 0, p
smsgs = [{"role": "user", "content": "Now stream me a few words about rivers"}]
chunks = stream("openai stream", oai.chat.completions.create(
    model="gpt-4o-mini", messages=smsgs, max_tokens=64, stream=True, stream_options={"include_usage": True}))
assert chunks[-1]["usage"]["completion_tokens"] > 0, chunks[-1]

tools = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city", "parameters": WEATHER}}]
ask = [{"role": "user", "content": "What is the weather in Paris?"}]
first = plain("openai tool call", oai.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=ask, tools=tools, tool_choice="required", max_tokens=64))
call = first.choices[0].message.tool_calls[0]
second = plain("openai tool result", oai.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", max_tokens=64, tools=tools, messages=ask + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]))
assert "sunny, 21 C" in second.choices[0].message.content, second


class City(pydantic.BaseModel):
    name: str
    population: int


raw = oai.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", max_tokens=256, messages=[{"role": "user", "content": "A city"}],
    response_format={"type": "json_schema", "json_schema": {"name": "City", "strict": True, "schema": {
        **City.model_json_schema(), "additionalProperties": False}}})
structured = plain("openai structured", raw)
City.model_validate_json(structured.choices[0].message.content)

if os.environ.get("CROSS"):
    split = oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, max_tokens=64, stream=True,
                                        stream_options={"include_usage": True})
    split = list(split)
    text = "".join(c.choices[0].delta.content or "" for c in split if c.choices)
    assert text == p.choices[0].message.content, (text, p)
    assert split[-1].usage.completion_tokens == p.usage.completion_tokens, split[-1]
    whole = oai.chat.completions.create(model="gpt-4o-mini", messages=smsgs, max_tokens=64)
    streamed = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    assert whole.choices[0].message.content == streamed, (whole, streamed)
    assert whole.usage.completion_tokens > 0, whole

# --- Anthropic ---------------------------------------------------------------------------
amsgs = [{"role": "user", "content": question}]
m = plain("anthropic plain", ant.messages.with_raw_response.create(
    model="claude-haiku-4-5", max_tokens=64, system="Be brief.", messages=amsgs))
assert m.content[0].text and m.usage.output_tokens > 0, m
asmsgs = [{"role": "user", "content": "Now stream me a few words about mountains"}]
events = stream("anthropic stream", ant.messages.create(
    model="claude-haiku-4-5", max_tokens=64, system="Be brief.", messages=asmsgs, stream=True))
assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop", events
if os.environ.get("CROSS"):
    with ant.messages.stream(model="claude-haiku-4-5", max_tokens=64, system="Be brief.", messages=amsgs) as s:
        final = s.get_final_message()
    assert final.content[0].text == m.content[0].text and final.usage.output_tokens > 0, (final, m)
    whole = ant.messages.create(model="claude-haiku-4-5", max_tokens=64, system="Be brief.", messages=asmsgs)
    streamed = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert whole.content[0].text == streamed and whole.usage.output_tokens > 0, (whole, streamed)
atools = [{"name": "weather", "description": "Weather in a city", "input_schema": WEATHER}]
afirst = plain("anthropic tool call", ant.messages.with_raw_response.create(
    model="claude-haiku-4-5", max_tokens=64, tools=atools, tool_choice={"type": "any"},
    messages=[{"role": "user", "content": "What is the weather in Paris?"}]))
use = next(b for b in afirst.content if b.type == "tool_use")
asecond = plain("anthropic tool result", ant.messages.with_raw_response.create(
    model="claude-haiku-4-5", max_tokens=64, tools=atools, messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [b.model_dump() for b in afirst.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
    ]))
assert "sunny, 21 C" in asecond.content[0].text, asecond

with open(os.environ["OUT"], "w") as f:
    json.dump(out, f, indent=1)
print("ok", len(out), "answers")
