"""The official OpenAI and Anthropic SDKs through `stack serve gateway` (to the mock model),
streaming included; a wrong key is an AuthenticationError, an exhausted key a
RateLimitError. Env: GATEWAY_URL; keys: gw-key (open), gw-two (2 requests a minute).
"""
import os

import anthropic
import openai

URL = os.environ["GATEWAY_URL"]


def oai(key="gw-key"):
    return openai.OpenAI(base_url=URL + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def ant(key="gw-key"):
    return anthropic.Anthropic(base_url=URL, api_key=key, max_retries=0, _strict_response_validation=True)


c = oai()
msgs = [{"role": "user", "content": "Hello through the gateway"}]
plain = c.chat.completions.create(model="mock-gpt", messages=msgs)
text = plain.choices[0].message.content
streamed = "".join(ch.choices[0].delta.content or "" for ch in
                   c.chat.completions.create(model="mock-gpt", messages=msgs, stream=True) if ch.choices)
assert streamed == text, (streamed, text)
assert "mock-gpt" in [m.id for m in c.models.list()]
lenient = openai.OpenAI(base_url=URL + "/v1", api_key="gw-key", max_retries=0)
assert len(lenient.embeddings.create(model="mock-embed", input="x").data[0].embedding) == 1536
assert "gateway" in c.responses.create(model="mock-gpt", input="Hello through the gateway").output_text
print("ok openai")

a = ant()
m = a.messages.create(model="mock-claude", max_tokens=128, messages=msgs)
with a.messages.stream(model="mock-claude", max_tokens=128, messages=msgs) as s:
    assert "".join(s.text_stream) == m.content[0].text
assert a.messages.count_tokens(model="mock-claude", messages=msgs).input_tokens > 0
print("ok anthropic")

for call in (lambda: oai("wrong").chat.completions.create(model="m", messages=msgs),
             lambda: ant("wrong").messages.create(model="m", max_tokens=8, messages=msgs)):
    try:
        call()
        raise AssertionError("a wrong key passed")
    except (openai.AuthenticationError, anthropic.AuthenticationError) as e:
        assert e.status_code == 401
try:
    ant("wrong").messages.create(model="m", max_tokens=8, messages=msgs)
except anthropic.AuthenticationError as e:
    assert e.body["type"] == "error" and e.body["error"]["type"] == "authentication_error", e.body
two = oai("gw-two")
two.chat.completions.create(model="mock-gpt", messages=msgs)
two.chat.completions.create(model="mock-gpt", messages=msgs)
try:
    two.chat.completions.create(model="mock-gpt", messages=msgs)
    raise AssertionError("the third request of a 2-rpm key passed")
except openai.RateLimitError as e:
    assert int(e.response.headers["retry-after"]) >= 1, e.response.headers
try:
    ant("gw-two").messages.create(model="m", max_tokens=8, messages=msgs)
    raise AssertionError("an exhausted key passed")
except anthropic.RateLimitError as e:
    assert e.body["error"]["type"] == "rate_limit_error", e.body
print("ok errors")
