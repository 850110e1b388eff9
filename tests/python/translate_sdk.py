"""Translation through `stack serve gateway`: the official OpenAI SDK calls a `claude-*`
model whose upstream is an `anthropic` provider, and the official Anthropic SDK a `gpt-*`
model whose upstream is an `openai` provider (the mock over TLS stands in for both), each
parsing every answer with strict response validation: plain, streamed, a two-turn tool
call round trip, structured output. Env: GATEWAY_URL (key gw-key).
"""
import json
import os

import anthropic
import openai
import pydantic

URL = os.environ["GATEWAY_URL"]
oai = openai.OpenAI(base_url=URL + "/v1", api_key="gw-key", max_retries=0, _strict_response_validation=True)
ant = anthropic.Anthropic(base_url=URL, api_key="gw-key", max_retries=0, _strict_response_validation=True)

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}

# --- OpenAI SDK → claude-* (translated to Anthropic messages and back) -------------------
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Claude"}]
plain = oai.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, max_tokens=64)
text = plain.choices[0].message.content
assert text and plain.choices[0].finish_reason in ("stop", "length"), plain
assert plain.usage.prompt_tokens > 0 and plain.usage.completion_tokens > 0, plain.usage
chunks = list(oai.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, max_tokens=64,
                                          stream=True, stream_options={"include_usage": True}))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert streamed == text, (streamed, text)
assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, chunks[-1]

tools = [{"type": "function", "function": {"name": "weather", "description": "Weather in a city", "parameters": WEATHER}}]
ask = [{"role": "user", "content": "What is the weather in Paris?"}]
first = oai.chat.completions.create(model="claude-sonnet-4-5", messages=ask, tools=tools, tool_choice="required", max_tokens=64)
call = first.choices[0].message.tool_calls[0]
assert first.choices[0].finish_reason == "tool_calls", first
assert call.function.name == "weather" and "city" in json.loads(call.function.arguments), call
second = oai.chat.completions.create(model="claude-sonnet-4-5", max_tokens=64, tools=tools, messages=ask + [
    {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
    {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
])
assert "sunny, 21 C" in second.choices[0].message.content, second
streamed_call = [c for c in oai.chat.completions.create(
    model="claude-sonnet-4-5", messages=ask, tools=tools, tool_choice="required", max_tokens=64, stream=True)]
assert any(c.choices and c.choices[0].delta.tool_calls for c in streamed_call), streamed_call


class City(pydantic.BaseModel):
    name: str
    population: int


parsed = oai.chat.completions.parse(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "A city"}],
                                    response_format=City, max_tokens=256)
assert isinstance(parsed.choices[0].message.parsed, City), parsed
try:
    oai.chat.completions.create(model="claude-sonnet-4-5", messages=msgs, max_tokens=8, logprobs=True)
    raise AssertionError("a parameter with no counterpart passed")
except openai.BadRequestError as e:
    assert "logprobs" in str(e), e
print("ok openai to anthropic")

# --- Anthropic SDK → gpt-* (translated to OpenAI chat and back) --------------------------
m = ant.messages.create(model="gpt-4o-mini", max_tokens=64, system="Be brief.",
                        messages=[{"role": "user", "content": "Hello GPT"}])
assert m.content[0].type == "text" and m.stop_reason in ("end_turn", "max_tokens"), m
assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage
with ant.messages.stream(model="gpt-4o-mini", max_tokens=64, system="Be brief.",
                         messages=[{"role": "user", "content": "Hello GPT"}]) as s:
    final = s.get_final_message()
assert final.content[0].text == m.content[0].text, (final, m)
assert final.usage.output_tokens > 0, final.usage

atools = [{"name": "weather", "description": "Weather in a city", "input_schema": WEATHER}]
first = ant.messages.create(model="gpt-4o-mini", max_tokens=64, tools=atools, tool_choice={"type": "any"},
                            messages=[{"role": "user", "content": "What is the weather in Paris?"}])
use = next(b for b in first.content if b.type == "tool_use")
assert first.stop_reason == "tool_use" and "city" in use.input, first
second = ant.messages.create(model="gpt-4o-mini", max_tokens=64, tools=atools, messages=[
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": [b.model_dump() for b in first.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
])
assert "sunny, 21 C" in second.content[0].text, second
with ant.messages.stream(model="gpt-4o-mini", max_tokens=64, tools=atools, tool_choice={"type": "any"},
                         messages=[{"role": "user", "content": "What is the weather in Paris?"}]) as s:
    final = s.get_final_message()
assert any(b.type == "tool_use" for b in final.content), final
try:
    ant.messages.create(model="gpt-4o-mini", max_tokens=8, extra_body={"top_k": 3}, messages=[{"role": "user", "content": "x"}])
    raise AssertionError("a parameter with no counterpart passed")
except anthropic.BadRequestError as e:
    assert "top_k" in str(e), e
print("ok anthropic to openai")
