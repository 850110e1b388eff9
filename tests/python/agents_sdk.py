"""Agent frameworks and structured outputs against the mock model (directly, or through
the gateway): every call parses with the SDK's strict validation and every agent loop
runs to a final answer.

Env: BASE_URL (http://127.0.0.1:PORT, the mock or a gateway in front of it), API_KEY.
The mock's fixtures (from the test) script the agents' tool calls:
  "weather and time"  -> get_weather and get_time in one turn (parallel)
  "chain"             -> get_weather; after a result matching "sunny" -> get_time
"""
import asyncio
import datetime
import enum
import json
import os
import sys
from typing import List, Optional

import anthropic
import openai
from pydantic import BaseModel, Field

URL = os.environ["BASE_URL"]
KEY = os.environ.get("API_KEY", "sk-dev")
print("openai", openai.__version__, "anthropic", anthropic.__version__)


class Priority(str, enum.Enum):
    low = "low"
    high = "high"


class Attendee(BaseModel):
    name: str
    email: str = Field(json_schema_extra={"format": "email"})
    tags: List[str]


class Meeting(BaseModel):
    title: str = Field(min_length=3, max_length=60)
    starts_at: datetime.datetime
    priority: Priority
    attendees: List[Attendee] = Field(min_length=1)
    room: Optional[str]
    minutes: int = Field(ge=15, le=120)


def oai():
    return openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0, _strict_response_validation=True)


def ant():
    return anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0, _strict_response_validation=True)


def check_meeting(m):
    assert isinstance(m, Meeting), m
    assert isinstance(m.starts_at, datetime.datetime) and m.attendees and 15 <= m.minutes <= 120, m
    return m


def openai_parse():
    c = oai()
    msgs = [{"role": "user", "content": "Plan the design review"}]
    a = c.chat.completions.parse(model="mock-gpt", messages=msgs, response_format=Meeting)
    b = c.chat.completions.parse(model="mock-gpt", messages=msgs, response_format=Meeting)
    check_meeting(a.choices[0].message.parsed)
    assert a.choices[0].message.parsed == b.choices[0].message.parsed, "deterministic"
    r = c.responses.parse(model="mock-gpt", input="Plan the design review", text_format=Meeting)
    check_meeting(r.output_parsed)
    assert r.usage.output_tokens > 0
    # json_object mode: some JSON object.
    j = c.chat.completions.create(model="mock-gpt", messages=msgs, response_format={"type": "json_object"})
    assert isinstance(json.loads(j.choices[0].message.content), dict)
    # A forced tool call has arguments valid for its schema.
    tools = [{"type": "function", "function": {"name": "book", "parameters": Meeting.model_json_schema()}}]
    t = c.chat.completions.create(model="mock-gpt", messages=msgs, tools=tools,
                                  tool_choice={"type": "function", "function": {"name": "book"}})
    call = t.choices[0].message.tool_calls[0]
    check_meeting(Meeting.model_validate_json(call.function.arguments))
    none = c.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "weather and time?"}],
                                     tools=tools, tool_choice="none")
    assert none.choices[0].message.tool_calls is None, "tool_choice none never calls"


def anthropic_structured():
    c = ant()
    p = c.messages.parse(model="mock-claude", max_tokens=1024, output_format=Meeting,
                         messages=[{"role": "user", "content": "Plan the design review"}])
    check_meeting(p.parsed_output)
    tools = [{"name": "book", "description": "book a room", "input_schema": Meeting.model_json_schema()}]
    m = c.messages.create(model="mock-claude", max_tokens=1024, tools=tools, tool_choice={"type": "any"},
                          messages=[{"role": "user", "content": "Book it"}])
    assert m.stop_reason == "tool_use", m
    check_meeting(Meeting.model_validate(m.content[0].input))
    # The tool loop ends: after the result comes a final answer that uses it.
    done = c.messages.create(model="mock-claude", max_tokens=1024, tools=tools, messages=[
        {"role": "user", "content": "Book it"},
        {"role": "assistant", "content": m.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": m.content[0].id, "content": "room 4 booked"}]},
    ])
    assert done.stop_reason == "end_turn" and "room 4 booked" in done.content[0].text, done
    with c.messages.stream(model="mock-claude", max_tokens=1024, messages=[{"role": "user", "content": "hi"}]) as s:
        final = s.get_final_message()
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0, final.usage


def agents_sdk():
    from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool
    from agents import set_tracing_disabled

    set_tracing_disabled(True)
    calls = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append("weather")
        return f"sunny in {city}"

    @function_tool
    def get_time(tz: str) -> str:
        """The time in a time zone."""
        calls.append("time")
        return f"12:00 in {tz}"

    async def run():
        client = openai.AsyncOpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0)
        for name, model in [("chat", OpenAIChatCompletionsModel(model="mock-gpt", openai_client=client)),
                            ("responses", OpenAIResponsesModel(model="mock-gpt", openai_client=client))]:
            for prompt in ["What are the weather and time in Paris?", "chain the weather then the time"]:
                calls.clear()
                agent = Agent(name="assistant", instructions="Use the tools.", tools=[get_weather, get_time],
                              model=model)
                result = await Runner.run(agent, prompt, max_turns=5)
                assert sorted(calls) == ["time", "weather"], (name, prompt, calls)
                assert "12:00" in result.final_output, (name, prompt, result.final_output)
            # An agent with a typed output ends with a document of that type.
            typed = Agent(name="planner", instructions="Plan.", output_type=Meeting, model=model)
            check_meeting((await Runner.run(typed, "Plan the design review", max_turns=3)).final_output)
        await client.close()

    asyncio.run(run())


def langchain():
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="mock-gpt", base_url=URL + "/v1", api_key=KEY, max_retries=0)
    schema = json.dumps(Meeting.model_json_schema())
    for method in ["json_schema", "function_calling", "json_mode"]:
        prompt = "Plan the design review"
        if method == "json_mode":
            prompt += f". Answer in JSON matching this schema: {schema}"
        check_meeting(llm.with_structured_output(Meeting, method=method).invoke(prompt))
    claude = ChatAnthropic(model="mock-claude", base_url=URL, api_key=KEY, max_retries=0, max_tokens=1024)
    check_meeting(claude.with_structured_output(Meeting).invoke("Plan the design review"))
    check_meeting(claude.with_structured_output(Meeting, method="json_schema").invoke("Plan the design review"))
    total = None
    for chunk in claude.stream("What is a context window?"):
        total = chunk if total is None else total + chunk
    usage = total.usage_metadata
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0, usage
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"], usage


for test in [openai_parse, anthropic_structured, agents_sdk, langchain]:
    test()
    print("ok", test.__name__)
    sys.stdout.flush()
